"""``medcard projections``: rebuild a service's projections of other services' events from
the topics into another database, and compare two databases' copies of them."""

from __future__ import annotations

import asyncio
import importlib
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from medcard.ports import SERVICE_PORTS
from shared.projection import Projection
from shared.rebuild import RebuildError, compare, rebuild
from shared.settings import get_settings

app = typer.Typer(help="Projections of the event log: rebuild and compare.", no_args_is_help=True)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

Service = Annotated[str, typer.Argument(help=f"One of {', '.join(SERVICE_PORTS)}")]


def projections_of(service: str) -> list[Projection]:
    """The projections a service declares in ``services/<service>/projections.py``."""
    if service not in SERVICE_PORTS:
        raise RebuildError(f"unknown service {service}; choose from {', '.join(SERVICE_PORTS)}")
    try:
        module = importlib.import_module(f"services.{service}.projections")
    except ModuleNotFoundError:
        raise RebuildError(f"{service} keeps no projection of other services' events") from None
    return list(module.PROJECTIONS)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(1)


def _differences(found: list[str], live: str, other: str) -> None:
    if not found:
        out.print(f"identical: {live} and {other}")
        return
    out.print(f"[red]{len(found)} difference(s)[/red] between {live} and {other} (first ones):")
    for line in found:
        out.print(f"  {escape(line)}", highlight=False)
    raise typer.Exit(1)


@app.command("rebuild")
def rebuild_command(
    service: Service,
    into: Annotated[str, typer.Option("--into", help="Database to rebuild into (must not hold them yet)")],
    replace: Annotated[bool, typer.Option(help="Drop the projections' collections in --into first")] = False,
    check: Annotated[bool, typer.Option("--compare", help="Then compare with the live database; exit 1 if "
                                                          "they differ")] = False,
) -> None:
    """Rebuild a service's projections from the topics (first offset to the current end)."""
    settings = get_settings()
    try:
        projections = projections_of(service)
        report = asyncio.run(rebuild(settings, projections, into, replace=replace))
    except RebuildError as exc:
        raise _fail(str(exc)) from None
    out.print(f"rebuilt {', '.join(p.name for p in projections)} of {service} into {into}: "
              f"{report.records} records read")
    for name, count in report.documents.items():
        out.print(f"  {name}: {count} documents")
    for line in report.skipped:
        out.print(f"  skipped (dead-lettered by the live consumer too): {escape(line)}", highlight=False)
    if check:
        live = settings.database(service)
        _differences(asyncio.run(compare(settings, projections, live, into)), live, into)


@app.command("compare")
def compare_command(
    service: Service,
    against: Annotated[str, typer.Option("--against", help="The database to compare the live one with")],
) -> None:
    """Compare a service's live projections with another database's copy; exit 1 if they differ."""
    settings = get_settings()
    try:
        projections = projections_of(service)
    except RebuildError as exc:
        raise _fail(str(exc)) from None
    live = settings.database(service)
    _differences(asyncio.run(compare(settings, projections, live, against)), live, against)
