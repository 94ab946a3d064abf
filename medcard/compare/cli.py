"""``medcard compare``: what would change if we changed the rule? A table per policy in the
terminal, the JSON, and the HTML report with both policies' charts overlaid."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from medcard.report.html import comparison_html
from medcard.simulate.plan import Rates
from medcard.simulate.run import Options

from .policies import POLICIES
from .run import Runs, compare

console = Console()
NO_RUNNING_SERVICES = (
    "compare sets each policy's side on the services it starts (MEDCARD_BANK_LOSS_PROPAGATION and the like), and "
    "services that are already running cannot be reconfigured: it refuses their URLs. Give it the stack's broker and "
    "database instead (--kafka, --mongo): each run starts services of its own on them, in a namespace of its own. "
    "`medcard simulate` with the URLs runs the stack's own rules.")


def compare_command(
    persons: Annotated[int, typer.Option(min=1, help="Insured persons")] = 200,
    months: Annotated[int, typer.Option(min=1, max=120, help="Simulated months after the opening month")] = 2,
    seeds: Annotated[int, typer.Option(min=1, help="Seeds 1..N, each run under both sides of every policy")] = 3,
    policy: Annotated[list[str] | None, typer.Option(help=f"Policies to compare (default all): "
                                                          f"{', '.join(POLICIES)}")] = None,
    report: Annotated[Path, typer.Option(help="Where to write the JSON report")] = Path("compare.json"),
    html: Annotated[Path, typer.Option(help="Where to write the HTML report")] = Path("compare.html"),
    kafka: Annotated[str | None, typer.Option(envvar="MEDCARD_KAFKA_BOOTSTRAP", help="Use this broker")] = None,
    mongo: Annotated[str | None, typer.Option(envvar="MEDCARD_MONGO_URL", help="Use this database")] = None,
    port_base: Annotated[int, typer.Option(help="Services listen on port_base+1..+4")] = 8120,
    fast_hashing: Annotated[bool, typer.Option(help="Cheaper argon2 in the services (large runs)")] = True,
    loss_rate: Annotated[float, typer.Option(min=0, max=1, help="Per person and month")] = Rates.loss_rate,
    thief_share: Annotated[float, typer.Option(min=0, max=1)] = Rates.thief_share,
    forgot_pin_rate: Annotated[float, typer.Option(min=0, max=1)] = Rates.forgot_pin_rate,
    runs_dir: Annotated[Path, typer.Option(help="Where each finished run's report is kept")]
        = Path(".state/compare-runs"),
    resume: Annotated[bool, typer.Option(help="Reuse the finished runs kept in --runs-dir (the same persons, months, "
                                         "rates, seed and policy): a stopped comparison goes on")] = False,
    identity_url: Annotated[str | None, typer.Option(help="Refused: " + NO_RUNNING_SERVICES)] = None,
    cards_url: Annotated[str | None, typer.Option(help="Refused (see --identity-url)")] = None,
    bank_url: Annotated[str | None, typer.Option(help="Refused (see --identity-url)")] = None,
    notifications_url: Annotated[str | None, typer.Option(help="Refused (see --identity-url)")] = None,
) -> None:
    """Run the same seeded population under two policies and show the differences.

    Each run starts the four services itself, set to one side of a policy: it cannot use
    services that are already running (their URLs are refused, saying so)."""
    if identity_url or cards_url or bank_url or notifications_url:
        console.print(f"[red]error:[/red] {NO_RUNNING_SERVICES}", highlight=False)
        raise typer.Exit(2)
    chosen = policy or list(POLICIES)
    unknown = [p for p in chosen if p not in POLICIES]
    if unknown:
        raise typer.BadParameter(f"unknown policies {unknown}; choose from {', '.join(POLICIES)}")
    rates = Rates(loss_rate=loss_rate, thief_share=thief_share, forgot_pin_rate=forgot_pin_rate)
    base = Options(persons=persons, months=months, kafka_bootstrap=kafka, mongo_url=mongo, port_base=port_base,
                   fast_hashing=fast_hashing, rates=rates)
    result = asyncio.run(compare(base, chosen, range(1, seeds + 1), lambda _what, _n: None,
                                 lambda m: console.print(f"[dim]compare:[/dim] {m}", highlight=False),
                                 Runs(runs_dir, reuse=resume)))
    report.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    html.write_text(comparison_html(result), encoding="utf-8")
    for p in result["policies"]:
        console.print(table(p))
    console.print(f"report written to {report} and {html}")
    if not all(p["invariants_held"] for p in result["policies"]):
        console.print("[red]some invariants failed[/red]")
        raise typer.Exit(1)


def table(p: dict[str, Any]) -> Table:
    t = Table(title=f"{p['name']}: {p['a']['label']} against {p['b']['label']}", caption=p["question"])
    for column in ("figure", p["a"]["label"], p["b"]["label"], "difference", "beyond the seeds' noise"):
        t.add_column(column, justify="left" if column == "figure" else "right")
    for f in p["figures"]:
        t.add_row(f["figure"], f"{f['a_mean']:,} ± {f['a_spread']:,}", f"{f['b_mean']:,} ± {f['b_spread']:,}",
                  f"{f['difference']:+,}", "[bold]yes[/bold]" if f["outside_noise"] else "no")
    return t
