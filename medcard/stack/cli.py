"""``medcard stack ...``: install, start, stop and inspect the local servers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from medcard.stack.local import LocalStack
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
