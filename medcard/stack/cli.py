"""``medcard stack ...``: install, start, stop and inspect the local servers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from medcard.stack.local import LocalStack
from medcard.stack.prune import current_names, plan, resumable_namespaces, running_namespaces
from medcard.stack.process import StackError, tail

app = typer.Typer(help="Local stack of real servers: Kafka (KRaft), and FerretDB 2 on PostgreSQL with DocumentDB.",
                  no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


class Service(StrEnum):
    kafka = "kafka"
    postgres = "postgres"
    ferretdb = "ferretdb"


@app.callback()
def main(
    ctx: typer.Context,
    state_dir: Annotated[Path | None, typer.Option(
        envvar="MEDCARD_STATE_DIR", help="Data, pid files and logs (default: ./.state/stack).")] = None,
    cache_dir: Annotated[Path | None, typer.Option(
        envvar="MEDCARD_CACHE_DIR",
        help="Kafka jars, DocumentDB and FerretDB builds (default: ~/.cache/medcard).")] = None,
    kafka_port: Annotated[int, typer.Option(envvar="MEDCARD_KAFKA_PORT")] = 19092,
    kafka_controller_port: Annotated[int, typer.Option(envvar="MEDCARD_KAFKA_CONTROLLER_PORT")] = 19093,
    mongo_port: Annotated[int, typer.Option(envvar="MEDCARD_MONGO_PORT")] = 27027,
    postgres_port: Annotated[int | None, typer.Option(
        envvar="MEDCARD_POSTGRES_PORT", help="PostgreSQL behind FerretDB (default: mongo port - 2000).")] = None,
) -> None:
    """Options shared by every stack command (put them before the command)."""
    ctx.obj = LocalStack(state_dir, kafka_port, kafka_controller_port, mongo_port, cache_dir, postgres_port)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn a StackError into a red message and exit status 1."""
    try:
        yield
    except StackError as exc:
        err_console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(1) from None


@app.command()
def install(ctx: typer.Context) -> None:
    """Fetch the Kafka jars (Maven), build DocumentDB (C) and FerretDB (Go) into the cache."""
    stack: LocalStack = ctx.obj
    with _errors(), console.status("installing (the first time takes a few minutes)..."):
        stack.install()
    console.print(f"[green]installed[/green] into {stack.cache_dir}")


@app.command()
def up(
    ctx: typer.Context,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for readiness.")] = 120.0,
) -> None:
    """Install if needed, then start Kafka, PostgreSQL and FerretDB and wait until each answers."""
    stack: LocalStack = ctx.obj
    with _errors(), console.status("starting the stack..."):
        stack.up(timeout=timeout)
    console.print(f"[green]up[/green]  kafka {stack.kafka_bootstrap}  mongo {stack.mongo_url}")


@app.command()
def down(ctx: typer.Context) -> None:
    """Stop every server (data is kept)."""
    stack: LocalStack = ctx.obj
    with _errors(), console.status("stopping the stack..."):
        stack.down()
    console.print("[green]down[/green]")


@app.command()
def status(ctx: typer.Context) -> None:
    """Show whether each server is running and answering."""
    stack: LocalStack = ctx.obj
    table = Table(title=f"stack in {stack.state_dir}")
    for column in ("service", "state", "pid", "version", "address", "log"):
        table.add_column(column, overflow="fold")
    for name, info in stack.status().items():
        state = ("[green]ready[/green]" if info["ready"] else "[yellow]starting[/yellow]") \
            if info["running"] else "[red]stopped[/red]"
        table.add_row(name, state, str(info["pid"] or "-"), info["version"] or "-", info["address"], info["log"])
    console.print(table)


@app.command()
def prune(
    ctx: typer.Context,
    keep: Annotated[list[str] | None, typer.Option(help="Keep this namespace too (repeat for more).")] = None,
    namespace: Annotated[str, typer.Option(envvar="MEDCARD_NAMESPACE", help="The stack's own namespace (kept).")]
        = "medcard",
    yes: Annotated[bool, typer.Option("--yes", help="Drop them (without it, only list what would go).")] = False,
) -> None:
    """Drop the databases and topics that finished runs left (every namespace but the stack's
    own, --keep's, those of resumable simulations (a progress.json under the state folder's
    parent names them) and those of running services (their MEDCARD_NAMESPACE). Lists them first; drops only with --yes."""
    stack: LocalStack = ctx.obj
    kept = {namespace, *(keep or []), *resumable_namespaces(stack.state_dir.parent), *running_namespaces()}
    try:
        databases, topics = asyncio.run(current_names(stack.mongo_url, stack.kafka_bootstrap))
    except Exception as exc:  # any failure to reach the servers gets the same answer
        err_console.print(f"[red]error:[/red] cannot list the stack's databases and topics ({exc!r}); "
                          "is it up (`medcard stack up`)?", highlight=False)
        raise typer.Exit(1) from None
    todo = plan(databases, topics, kept)
    table = Table(title=f"{len(todo.drop)} namespaces to drop" + ("" if yes else " (listed only: --yes drops them)"))
    for column in ("namespace", "databases", "topics"):
        table.add_column(column)
    for ns, left in todo.drop.items():
        table.add_row(ns, str(len(left.databases)), str(len(left.topics)))
    console.print(table)
    console.print("kept: " + (", ".join(todo.kept) or "-"), highlight=False)
    if yes and todo.drop:
        with console.status(f"dropping {len(todo.databases)} databases and {len(todo.topics)} topics..."):
            asyncio.run(todo.apply(stack.mongo_url, stack.kafka_bootstrap))
        console.print(f"[green]dropped[/green] {len(todo.databases)} databases and {len(todo.topics)} topics")


@app.command()
def logs(
    ctx: typer.Context,
    service: Annotated[Service | None, typer.Argument(help="Only this server.")] = None,
    lines: Annotated[int, typer.Option("--lines", "-n", help="Lines to show.")] = 40,
) -> None:
    """Print the last lines of the servers' logs."""
    stack: LocalStack = ctx.obj
    servers = {server.name: server for server in stack.servers}
    names = [service.value] if service else list(servers)
    for name in names:
        log = servers[name].log_file
        console.rule(f"{name}: {log}")
        console.print(tail(log, lines) or "(no log yet)", markup=False, highlight=False)
