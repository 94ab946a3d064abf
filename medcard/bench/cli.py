"""``medcard bench``: each figure beside its baseline measured in the same run, a table
and a JSON report."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .run import ROWS, Options, bench

console = Console() if sys.stdout.isatty() else Console(width=200)


def _ints(text: str) -> list[int]:
    try:
        values = [int(x.replace("_", "")) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise typer.BadParameter("sizes must be positive")
    return values


def bench_command(
    size: Annotated[int, typer.Option(min=1, help="Committed commands (relay); accounts (projection, month end)")]
    = 10_000,
    sizes: Annotated[str, typer.Option(help="Accounts for projection and month end, comma-separated "
                                            "(the growth table, e.g. 10000,100000,1000000); default --size")] = "",
    reports: Annotated[int, typer.Option(min=1, help="Loss reports (loss-to-block row)")] = 1000,
    pos_cards: Annotated[int, typer.Option(min=1, help="Funded cards the POS load swipes")] = 200,
    duration: Annotated[float, typer.Option(min=1, help="Seconds of each load phase (POS and its baseline)")] = 20.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Concurrent POS clients")] = 16,
    loss_parallel: Annotated[int, typer.Option(min=1, help="Loss reports in flight at once")] = 1,
    rows: Annotated[str, typer.Option(help=f"Rows to run, comma-separated: {', '.join(ROWS)}")]
    = ",".join(ROWS),
    kafka: Annotated[str | None, typer.Option(help="Use this broker (else the local stack)")] = None,
    mongo: Annotated[str | None, typer.Option(help="Use this database (else the local stack)")] = None,
    port_base: Annotated[int, typer.Option(help="Processes listen on port_base+1..+17")] = 8400,
    simulation_persons: Annotated[int, typer.Option(min=0, help="Simulation row: persons (0: no simulation row)")]
    = 0,
    simulation_months: Annotated[int, typer.Option(min=1, help="Simulation row: months")] = 1,
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the JSON report")] = Path("bench.json"),
    profile: Annotated[Path | None, typer.Option(help="Record the measured services with py-spy into this folder")]
    = None,
) -> None:
    """Benchmark the ecosystem against baselines measured in the same run."""
    chosen = tuple(r.strip() for r in rows.split(",") if r.strip())
    unknown = [r for r in chosen if r not in ROWS]
    if unknown:
        raise typer.BadParameter(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    if (kafka is None) != (mongo is None):
        raise typer.BadParameter("give both --kafka and --mongo, or neither (the local stack)")
    options = Options(size=size, sizes=_ints(sizes) if sizes else [], reports=reports, pos_cards=pos_cards,
                      duration=duration, concurrency=concurrency, loss_parallel=loss_parallel, rows=chosen,
                      kafka_bootstrap=kafka, mongo_url=mongo, port_base=port_base,
                      simulation_persons=simulation_persons, simulation_months=simulation_months,
                      profile_dir=profile)
    def write(report: dict[str, Any]) -> None:
        json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")

    result = asyncio.run(bench(options, lambda m: console.print(f"[dim]bench:[/dim] {m}", highlight=False), write))
    write(result)
    console.print(table(result))
    if result["services_peak_memory_mb"]:
        console.print(memory_table(result["services_peak_memory_mb"]))
    console.print(f"report written to {json_path}")


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value >= 100:
        return f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else f"{value:.3g}" if value < 10 else f"{value:,.1f}"


def table(result: dict[str, Any]) -> Table:
    m = result["machine"]
    title = (f"medcard bench, {m['cores']} cores ({m['cpu_model']}), {m['ram_gib']} GiB, "
             f"load {m['load_average'][0]} -> {m['load_average_end'][0]}")
    t = Table(title=title)
    for col, justify in (("figure", "left"), ("value", "right"), ("baseline", "right"), ("baseline is", "left"),
                         ("ratio", "right"), ("goal", "left"), ("met", "center")):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in result["rows"]:
        unit = f" {r['unit']}" if r["unit"] else ""
        value = _num(r["value"]) + unit if r["value"] is not None else "[red]failed[/red]"
        baseline = _num(r["baseline"]) + unit if r["baseline"] is not None else "-"
        met = "-" if r["goal"] == "report it" else "[green]yes[/green]" if r["met"] else "[red]no[/red]"
        t.add_row(r["figure"], value, baseline, r["baseline_figure"], _num(r["ratio"]), r["goal"], met)
        if r["detail"].get("error"):
            t.add_row(f"  [red]{r['detail']['error'][:200]}[/red]", "", "", "", "", "", "")
    return t


def memory_table(peaks: dict[str, dict[str, float | None] | None]) -> Table:
    """Peak resident memory of each service process, per group of rows."""
    t = Table(title="peak memory per service (MiB, VmHWM)")
    services = ("identity", "cards", "bank", "notifications")
    t.add_column("rows")
    for name in services:
        t.add_column(name, justify="right")
    for group, measured in peaks.items():
        by_service = measured or {}
        t.add_row(group, *(_num(by_service.get(name)) for name in services))
    return t
