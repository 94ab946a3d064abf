"""Operators' commands, mounted at the root of ``medcard``: ``events tail``, ``card``, ``lag``,
``dlq list|show|replay`` and ``console``. Settings come from MEDCARD_* variables."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from medcard.ports import CONSOLE_PORT
from shared.domain import DomainError
from shared.kafka import TRANSIENT_KAFKA_ERRORS
from shared.settings import Settings

from . import dlq as dead
from . import render
from .filters import EventFilter, parse_start, topics_of
from .lag import consumer_lag
from .state import default_urls
from .story import card_report
from .tail import tail
from .views import EventView

T = TypeVar("T")
app = typer.Typer(no_args_is_help=True)
events_app = typer.Typer(help="The event streams between the services.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead-letter topics: what sits there, why, and replay.", no_args_is_help=True)
app.add_typer(events_app, name="events")
app.add_typer(dlq_app, name="dlq")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
URLS = default_urls()

Services = Annotated[list[str] | None, typer.Option("--service", "-s", help="Owning service of a topic (repeatable)")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output")]
IdentityUrl = Annotated[str, typer.Option(help="identity's base URL")]
CardsUrl = Annotated[str, typer.Option(help="cards' base URL")]
BankUrl = Annotated[str, typer.Option(help="bank's base URL")]
NotificationsUrl = Annotated[str, typer.Option(help="notifications' base URL")]


@contextmanager
def _failures(settings: Settings) -> Iterator[None]:
    """A precise message and exit code 1 for what the operator can fix."""
    try:
        yield
    except DomainError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False)
        raise typer.Exit(1) from None
    except TRANSIENT_KAFKA_ERRORS as exc:
        err.print(f"[red]error:[/red] Kafka at {settings.kafka_bootstrap} did not answer: {escape(repr(exc))}",
                  highlight=False)
        raise typer.Exit(1) from None


def _run(settings: Settings, work: Coroutine[Any, Any, T]) -> T:
    with _failures(settings):
        return asyncio.run(work)


def _print_json(value: Any) -> None:
    typer.echo(render.json_line(value))


@events_app.command("tail")
def events_tail(
    service: Services = None,
    start: Annotated[str, typer.Option("--from", help="now, start, or an ISO 8601 time")] = "now",
    event_type: Annotated[list[str] | None,
                          typer.Option("--type", "-t", help="CardLost or a full type (repeatable)")] = None,
    card: Annotated[str | None, typer.Option(help="Card number (subject or named in the payload)")] = None,
    person: Annotated[str | None, typer.Option(help="Person id (partition key or payload)")] = None,
    correlation: Annotated[str | None, typer.Option(help="Correlation id")] = None,
    as_json: AsJson = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Stop after this many events")] = None,
    idle_exit: Annotated[float | None,
                         typer.Option(min=0.1, help="Stop after this many seconds without records")] = None,
) -> None:
    """Follow the events, one line each (or one JSON envelope per line), with filters."""
    settings = Settings()
    match = EventFilter(types=tuple(event_type or ()), card=card, person=person, correlation=correlation)

    def emit(view: EventView) -> None:
        if view.envelope is None:
            err.print(f"[red]unreadable record[/red] {view.topic}/{view.partition}@{view.offset}: "
                      f"{escape(render.printable(view.error or ''))}", highlight=False)
        elif as_json:
            _print_json(view.envelope)
        else:
            out.print(render.event_text(view.line()))

    with _failures(settings):
        topics, begin = topics_of(settings.namespace, service), parse_start(start)
    try:
        _run(settings, tail(settings, topics=topics, start=begin, match=match, emit=emit, limit=limit,
                            idle_exit=idle_exit))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


@app.command("card")
def card(
    card_number: Annotated[str, typer.Argument(help="The card number")],
    as_json: AsJson = False,
    identity_url: IdentityUrl = URLS["identity"], cards_url: CardsUrl = URLS["cards"],
    bank_url: BankUrl = URLS["bank"], notifications_url: NotificationsUrl = URLS["notifications"],
) -> None:
    """The story of one card across all services, and the state each holds now."""
    settings = Settings()
    urls = {"identity": identity_url, "cards": cards_url, "bank": bank_url, "notifications": notifications_url}
    report = _run(settings, card_report(settings, card_number, urls))
    if as_json:
        _print_json(report.model_dump(mode="json"))
        return
    out.print(render.story_table(report))
    out.print(render.states_table(report))
    for problem in report.disagreements:
        out.print(f"[bold red]disagreement:[/bold red] {escape(render.printable(problem))}", highlight=False)
    if not report.events:
        out.print(f"[yellow]no event names card {escape(render.printable(card_number))}[/yellow]")


@app.command("lag")
def lag(service: Services = None, as_json: AsJson = False) -> None:
    """Per service consumer group and partition: committed offset, end offset, lag."""
    settings = Settings()
    groups = _run(settings, consumer_lag(settings, service))
    if as_json:
        _print_json([g.model_dump(mode="json") for g in groups])
    else:
        out.print(render.lag_table(groups))


@dlq_app.command("list")
def dlq_list(service: Services = None, as_json: AsJson = False) -> None:
    """What sits in each dead-letter topic, and why."""
    settings = Settings()
    letters = _run(settings, dead.dead_letters(settings, service))
    if as_json:
        _print_json([d.model_dump(mode="json") for d in letters])
    elif letters:
        out.print(render.dlq_table(letters))
    else:
        out.print("[green]no dead letters[/green]")


@dlq_app.command("show")
def dlq_show(
    topic: Annotated[str, typer.Argument(help="The dead-letter topic, e.g. medcard.cards.dlq")],
    ref: Annotated[str, typer.Argument(metavar="OFFSET", help="partition:offset, or the offset alone")],
) -> None:
    """One dead letter in full: headers, key and value."""
    settings = Settings()
    letter = _run(settings, dead.show(settings, topic, ref))
    if out.is_terminal:
        out.print(Text(render.printable(json.dumps(letter.model_dump(mode="json"), ensure_ascii=False, indent=2))))
    else:
        _print_json(letter.model_dump(mode="json"))


@dlq_app.command("replay")
def dlq_replay(
    topic: Annotated[str, typer.Argument(help="The dead-letter topic, e.g. medcard.cards.dlq")],
    offset: Annotated[list[str] | None,
                      typer.Option("--offset", help="partition:offset or offset (repeatable)")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Every dead letter of the topic")] = False,
    again: Annotated[bool, typer.Option("--again", help="Replay even those replayed before")] = False,
    as_json: AsJson = False,
) -> None:
    """Republish chosen dead letters to their original topic, once the cause is fixed."""
    settings = Settings()
    if bool(offset) == replay_all:
        err.print("[red]error:[/red] give --offset (one or more) or --all", highlight=False)
        raise typer.Exit(2)
    report = _run(settings, dead.replay(settings, topic, None if replay_all else offset, again=again))
    if as_json:
        _print_json(report.model_dump(mode="json"))
        return
    for line in render.replay_lines(report):
        out.print(line)


@app.command("console")
def console(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = CONSOLE_PORT,
    identity_url: IdentityUrl = URLS["identity"], cards_url: CardsUrl = URLS["cards"],
    bank_url: BankUrl = URLS["bank"], notifications_url: NotificationsUrl = URLS["notifications"],
) -> None:
    """The operators' web console (live events, card stories, lag, dead letters)."""
    import uvicorn

    from medcard.console.app import create

    urls = {"identity": identity_url, "cards": cards_url, "bank": bank_url, "notifications": notifications_url}
    out.print(f"operators' console on http://{host}:{port}/")
    uvicorn.run(create(Settings(), urls=urls), host=host, port=port, log_level="warning")
