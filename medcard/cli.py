"""``medcard``: the project's command line."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.table import Table

from medcard.bench.cli import bench_command
from medcard.compare.cli import compare_command
from medcard.ops.cli import app as ops_app
from medcard.projections import app as projections_app
from medcard.services import ServiceFleet
from medcard.simulate.cli import simulate_command
from medcard.stack.cli import app as stack_app
from medcard.stack.local import LocalStack
from medcard.stack.process import StackError
from shared.kafka import ensure_topics
from shared.keys import KEYS_FILE_NAME
from shared.settings import get_settings

app = typer.Typer(help="Medical insurance card ecosystem: local stack, services, tools.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(ops_app)  # events, card, lag, dlq, console: at the root
topics_app = typer.Typer(help="Kafka topics of the ecosystem.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
services_app = typer.Typer(help="The four services as local processes.", no_args_is_help=True)
app.add_typer(services_app, name="services")
app.add_typer(projections_app, name="projections")
console = Console()
app.command("simulate")(simulate_command)
app.command("bench")(bench_command)
app.command("compare")(compare_command)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except StackError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None


def _fleet(stack: LocalStack) -> ServiceFleet:
    return ServiceFleet(stack.state_dir, kafka_bootstrap=stack.kafka_bootstrap, mongo_url=stack.mongo_url)


def _status_table(title: str, info: dict[str, dict[str, object]]) -> Table:
    table = Table(title=title)
    for col in ("name", "running", "ready", "pid", "address"):
        table.add_column(col)
    for name, row in info.items():
        table.add_row(name, *(str(row[c]) for c in ("running", "ready", "pid", "address")))
    return table


@topics_app.command("create")
def topics_create() -> None:
    """Create every topic and dead-letter topic (idempotent)."""
    created = asyncio.run(ensure_topics(get_settings()))
    console.print(f"created {len(created)} topics" if created else "all topics exist")


@services_app.command("up")
def services_up() -> None:
    """Start the four services against the running local stack."""
    with _errors():
        fleet = _fleet(LocalStack())
        fleet.up()
    console.print(_status_table("services", fleet.status()))


@services_app.command("down")
def services_down() -> None:
    """Stop the four services."""
    with _errors():
        _fleet(LocalStack()).down()
    console.print("services stopped")


@services_app.command("status")
def services_status() -> None:
    """Show whether each service runs and is ready."""
    console.print(_status_table("services", _fleet(LocalStack()).status()))


@app.command()
def up() -> None:
    """Start the whole ecosystem: Kafka, FerretDB and the four services."""
    with _errors():
        stack = LocalStack()
        with console.status("starting Kafka and FerretDB..."):
            stack.up()
        fleet = _fleet(stack)
        with console.status("starting the four services..."):
            fleet.up()
    console.print(_status_table("services", fleet.status()))
    console.print("OpenAPI docs: " + ", ".join(f"{u}/docs" for u in fleet.urls().values()))
    console.print(f"Keys and the operator's password (user 'operator', key identity_bootstrap_operator_password), "
                  f"generated for this installation: {stack.state_dir / KEYS_FILE_NAME} (mode 0600)")
    console.print("Stop everything with: medcard down")


@app.command()
def down() -> None:
    """Stop the four services, then Kafka and FerretDB (data is kept)."""
    with _errors():
        stack = LocalStack()
        _fleet(stack).down()
        stack.down()
    console.print("stopped")


if __name__ == "__main__":
    app()
