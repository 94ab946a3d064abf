"""``medcard simulate``: months of card life, with a progress bar, a summary and a report."""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
import uvloop
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from medcard.report.html import simulation_html
from shared.keys import KeysUnavailable, default_keys_file

from .driver import CONCURRENCY, Stopped
from .plan import Rates
from .progress import ProgressFiles
from .run import Options, simulate
from .running import CannotDrive, refusals, running_stack

console = Console()
URL_HELP = ("all four URLs or none; with them --keys-file, --namespace and --kafka say where the stack's keys, "
            "topics and broker are")


def simulate_command(
    persons: Annotated[int, typer.Option(min=1, help="Insured persons")] = 100,
    months: Annotated[int, typer.Option(min=1, max=120, help="Simulated months after the opening month")] = 3,
    seed: Annotated[int, typer.Option(help="Same seed, same business outcome")] = 7,
    report: Annotated[Path, typer.Option(help="Where to write the JSON report")] = Path("report.json"),
    purchases_per_month: Annotated[float, typer.Option(min=0)] = Rates.purchases_per_month,
    loss_rate: Annotated[float, typer.Option(min=0, max=1, help="Per person and month")] = Rates.loss_rate,
    thief_share: Annotated[float, typer.Option(min=0, max=1)] = Rates.thief_share,
    shop_share: Annotated[float, typer.Option(min=0, max=1)] = Rates.shop_share,
    cash_share: Annotated[float, typer.Option(min=0, max=1)] = Rates.cash_share,
    forgot_pin_rate: Annotated[float, typer.Option(min=0, max=1)] = Rates.forgot_pin_rate,
    holidays: Annotated[str, typer.Option(help="Extra public holidays, comma-separated ISO dates")] = "",
    kafka: Annotated[str | None, typer.Option(envvar="MEDCARD_KAFKA_BOOTSTRAP", help="Use this broker (with the "
                                              "services' URLs: their broker, default 127.0.0.1:19092)")] = None,
    mongo: Annotated[str | None, typer.Option(envvar="MEDCARD_MONGO_URL", help="Use this database")] = None,
    port_base: Annotated[int, typer.Option(help="Services listen on port_base+1..+4")] = 8110,
    fast_hashing: Annotated[bool, typer.Option(help="Cheaper argon2 in the services (large runs)")] = False,
    keep: Annotated[bool, typer.Option(help="Leave the services running afterwards")] = False,
    faults: Annotated[int, typer.Option(min=0, help="Inject this many seeded faults (service crash, broker "
                                        "or database outage) while events are in flight; local stack only")] = 0,
    concurrency: Annotated[int, typer.Option(min=1, help="Persons acting at once (each one's actions in order)")]
        = CONCURRENCY,
    progress_dir: Annotated[Path, typer.Option(help="Where the run keeps its progress, for --resume")]
        = Path(".state/sim-progress"),
    resume: Annotated[bool, typer.Option(help="Go on with the stopped or crashed run kept in --progress-dir, from "
                                         "its last completed business day (its persons, months, seed and rates)")]
        = False,
    identity_url: Annotated[str | None, typer.Option(help=f"Drive services that are already running ({URL_HELP})")]
        = None,
    cards_url: Annotated[str | None, typer.Option(help="cards' URL (with --identity-url)")] = None,
    bank_url: Annotated[str | None, typer.Option(help="bank's URL (with --identity-url)")] = None,
    notifications_url: Annotated[str | None, typer.Option(help="notifications' URL (with --identity-url)")] = None,
    keys_file: Annotated[Path | None, typer.Option(envvar="MEDCARD_KEYS_FILE", help="With the URLs: the "
                                                   "installation's keys file (default: the local stack's)")] = None,
    namespace: Annotated[str, typer.Option(envvar="MEDCARD_NAMESPACE", help="With the URLs: their namespace")]
        = "medcard",
) -> None:
    """Simulate months of the card ecosystem through the services' APIs and verify it.

    Ctrl-C (or SIGTERM) stops the run at the end of the business day under way; `--resume`
    then goes on from there (so does it after a crash), and the report is the one an
    uninterrupted run would have written.

    With the four services' URLs the run drives a stack that is already running (`medcard
    up`, `docker compose up`) instead of starting its own: from the stack's business date,
    with identifiers of its own, judged on its own events; not resumable."""
    rates = Rates(purchases_per_month=purchases_per_month, loss_rate=loss_rate, thief_share=thief_share,
                  shop_share=shop_share, cash_share=cash_share, forgot_pin_rate=forgot_pin_rate)
    try:
        stack = running_stack({"identity": identity_url, "cards": cards_url, "bank": bank_url,
                               "notifications": notifications_url}, keys_file or default_keys_file(), namespace)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    options = Options(persons=persons, months=months, seed=seed, rates=rates, kafka_bootstrap=kafka,
                      mongo_url=mongo, port_base=port_base, holidays=holidays, fast_hashing=fast_hashing, keep=keep,
                      faults=faults, concurrency=concurrency, progress_dir=progress_dir, resume=resume, stack=stack)
    if stack is not None and (refused := refusals(options)):
        raise typer.BadParameter("; ".join(refused))
    if resume:
        saved = ProgressFiles(progress_dir)
        if not saved.progress.exists():
            console.print(f"[red]nothing to resume: no progress file at {saved.progress}[/red]")
            raise typer.Exit(2)
        persons, months = load_options(saved)
    days = months * 31
    stop = _StopAtDayEnd()
    with _progress_shown({"register": persons, "cards": persons, "days": days}) as progress:
        try:
            with stop.installed():
                # uvloop, as the services run: asyncio's own loop (selectors, handles) was a tenth
                # of the simulator's CPU in the 100,000-person run (py-spy).
                result = uvloop.run(simulate(options, progress, stop.asked))
        except (CannotDrive, KeysUnavailable) as err:
            console.print(f"[red]error:[/red] {err}", highlight=False)
            raise typer.Exit(2) from None
        except Stopped as stopped:
            console.print(f"stopped before {stopped.day.isoformat()}; " + (
                "a run against running services cannot be resumed" if stack is not None else
                f"go on with `medcard simulate --resume --progress-dir {progress_dir}`"))
            raise typer.Exit(3) from None
    page = write_reports(result, report)
    console.print(summary(result))
    console.print(f"report written to {report} and {page} (open it in a browser: no network needed)")
    if not all(result["invariants"].values()):
        console.print("[red]some invariants failed[/red]")
        raise typer.Exit(1)


PHASES = {"register": "registering people", "cards": "issuing cards", "days": "simulated days"}


@contextlib.contextmanager
def _progress_shown(totals: dict[str, int]) -> Iterator[Callable[[str, int], None]]:
    """The run's ``progress`` callback: bars on a terminal, lines in a log (``ProgressLines``)."""
    if not console.is_terminal:
        lines = ProgressLines(totals)

        def line(what: str, n: int) -> None:
            if text := lines.advance(what, n):
                console.print(text, highlight=False, soft_wrap=True)
        yield line
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        tasks = {what: bar.add_task(PHASES[what], total=total) for what, total in totals.items()}

        def advance(what: str, n: int) -> None:
            if what in tasks:
                bar.advance(tasks[what], n)
        yield advance
        days = tasks["days"]
        bar.update(days, total=bar.tasks[days].completed)  # months * 31 was a bound


class ProgressLines:
    """A run's progress written as lines, for a log (a long run started in the background):
    one when a phase has gone another twentieth of its way, and one for every simulated day,
    each with the time since the start. The number of days is an upper bound (31 a month)."""

    def __init__(self, totals: dict[str, int], clock: Callable[[], float] = time.monotonic) -> None:
        self.totals, self.clock, self.started = totals, clock, clock()
        self.done: Counter[str] = Counter()

    def advance(self, what: str, n: int) -> str | None:
        """The line to write after ``n`` more steps of ``what``, if one is due."""
        total = self.totals.get(what)
        if total is None or n <= 0:
            return None
        before = self.done[what]
        self.done[what] += n
        step = 1 if what == "days" else max(1, total // 20)
        if before // step == self.done[what] // step and self.done[what] != total:
            return None
        elapsed = int(self.clock() - self.started)
        hours, rest = divmod(elapsed, 3600)
        of = f"at most {total}" if what == "days" else str(total)
        return f"{hours}:{rest // 60:02d}:{rest % 60:02d} {PHASES[what]}: {self.done[what]} of {of}"


def write_reports(result: dict[str, Any], report: Path) -> Path:
    """The JSON report at ``report`` and the HTML one beside it (returned)."""
    report.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    page = report.with_suffix(".html")
    page.write_text(simulation_html(result), encoding="utf-8")
    return page


def load_options(files: ProgressFiles) -> tuple[int, int]:
    """The persons and months of the run kept in ``files`` (for the progress bar)."""
    saved = json.loads(files.progress.read_text())["options"]
    return int(saved["persons"]), int(saved["months"])


class _StopAtDayEnd:
    """The first Ctrl-C or SIGTERM asks the run to stop once the business day under way has
    drained (the run is then resumable); a second Ctrl-C stops it at once."""

    def __init__(self) -> None:
        self.stop = False

    def asked(self) -> bool:
        return self.stop

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.stop and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.stop = True
        console.print("stopping at the end of this business day (Ctrl-C again: at once)")

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        before = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in before.items():
                signal.signal(s, handler)


def summary(r: dict[str, Any]) -> Table:
    table = Table(title=f"{r['persons']} persons, {r['months']} months, seed {r['seed']} "
                        f"({r['start_date']} to {r['end_date']})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    declined = r["purchases"]["declined"]
    rows = [
        ("wall time", f"{r['wall_seconds']} s" + (" (resumed)" if r.get("resumed") else "")),
        ("events published", f"{r['events_published']} ({r['events_per_second']}/s)"),
        ("purchases authorised", r["purchases"]["authorised"]),
        ("purchases declined", f"{sum(declined.values())} " + " ".join(f"{k}:{v}" for k, v in declined.items())),
        ("losses online / bank", f"{r['losses'].get('online', 0)} / {r['losses'].get('bank', 0)}"),
        ("fraud attempts blocked", r["fraud_attempts_blocked"]),
        ("replacements req/stamped/ready/collected",
         "/".join(str(r["replacements"][k]) for k in ("requested", "stamped", "ready", "collected"))),
        ("monthly transfers", f"{r['monthly_transfers']['count']} = {r['monthly_transfers']['total_fen'] / 100:.2f} yuan"),
        ("loss to block p50 / p99", f"{r['loss_to_block']['latency_ms_p50']} / {r['loss_to_block']['latency_ms_p99']} ms"),
        ("purchases inside the loss window", r["loss_to_block"]["purchases_inside_window"]),
        ("loss reports answered blocked / pending",
         f"{r['loss_to_block']['answered'].get('confirmed', 0)} / {r['loss_to_block']['answered'].get('pending', 0)}"),
    ]
    if "faults" in r:
        f = r["faults"]
        kinds = " ".join(f"{k}:{v}" for k, v in f["by_kind"].items())
        rows.append(("faults injected / survived", f"{f['injected']} / {f['survived']} ({kinds})"))
    for name, value in rows:
        table.add_row(name, str(value))
    for name, ok in r["invariants"].items():
        table.add_row(f"invariant {name}", "[green]true[/green]" if ok else "[red]FALSE[/red]")
    return table
