"""One self-contained HTML file for a simulation or a comparison of policies: the figures as
tables and the series as static SVG charts (``svg.py``), styles inline, no script and no
network, so it opens anywhere, offline, and prints.

A simulation report (``medcard simulate``'s JSON) draws from its ``series``:

- ``days``: the business days of the run, in order;
- ``events_by_day``: event name (``CardLost``) -> count per day (from the topics);
- ``purchases_by_day``: ``approved`` and each refusal's response code -> count per day;
- ``loss_to_block_ms``: each loss's time from CardLost to the bank's CardBlocked;
- ``balances_at_month_end``: month -> ``accounts``, ``total_fen`` (every balance together) and
  ``median_fen`` (the median account right after its month-end transfer);
- ``replacement_waits``: working days from each replacement's request to its card being ready.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from .svg import Series, colour_of, grouped_bars, histogram, line_chart, stacked_bars

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2430; margin: 1.5rem auto;
       max-width: 980px; padding: 0 1rem; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 2rem; } h3 { font-size: .95rem; margin: 1.2rem 0 .3rem; }
table { border-collapse: collapse; font-size: .88rem; margin: .5rem 0 1rem; }
th, td { border-bottom: 1px solid #e3e6ea; padding: .25rem .6rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #18794e; } .bad { color: #b42318; } .dim { color: #6b7280; }
svg.chart { width: 100%; height: auto; } svg.chart text { font: 11px system-ui, sans-serif; fill: #6b7280; }
figure { margin: 0 0 1.4rem; } figcaption { font-size: .85rem; color: #6b7280; }
.legend { display: flex; flex-wrap: wrap; gap: .9rem; font-size: .8rem; margin: .2rem 0 0 56px; }
.legend i { display: inline-block; width: .7rem; height: .7rem; margin-right: .3rem; vertical-align: -1px; }
"""
TOP_TYPES = 8


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>\n")


def _figure(chart: str, caption: str) -> str:
    return f"<figure>{chart}<figcaption>{escape(caption)}</figcaption></figure>"


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = "".join("<tr>" + "".join(f'<td class="{"num" if isinstance(v, int | float) else ""}">{escape(_fmt(v))}'
                                     "</td>" for v in row) + "</tr>" for row in rows)
    return "<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + f"</tr></thead>{cells}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "FALSE"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _top(by_key: Mapping[str, Sequence[float]], n: int = TOP_TYPES) -> list[Series]:
    """The n keys with the most in total, the rest summed as ``other``."""
    ranked = sorted(by_key.items(), key=lambda kv: -sum(kv[1]))
    series = [Series(k, list(v)) for k, v in ranked[:n]]
    rest = ranked[n:]
    if rest:
        length = max(len(v) for _, v in rest)
        series.append(Series("other", [sum(v[i] for _, v in rest if i < len(v)) for i in range(length)]))
    return series


def _purchase_series(purchases: Mapping[str, Sequence[float]]) -> list[Series]:
    ordered = ["approved", *sorted(k for k in purchases if k != "approved")]
    return [Series("approved" if k == "approved" else f"refused {k}", list(purchases[k]),
                   "#18794e" if k == "approved" else "") for k in ordered if k in purchases]


def _month_totals(balances: Mapping[str, Mapping[str, int]]) -> tuple[list[str], list[float], list[float]]:
    months = sorted(balances)
    return (months, [balances[m]["total_fen"] / 100 for m in months],
            [balances[m]["median_fen"] / 100 for m in months])


def simulation_charts(series: Mapping[str, Any]) -> str:
    """The five charts of one run."""
    days = [d[5:] for d in series.get("days", [])]
    months, totals, medians = _month_totals(series.get("balances_at_month_end", {}))
    return "".join([
        _figure(stacked_bars("Events per business day, by type", days, _top(series.get("events_by_day", {}))),
                "Events published on every topic, by the business day they tell of."),
        _figure(histogram("Loss to block", [Series("loss to block", series.get("loss_to_block_ms", []))],
                          unit=" ms"),
                "Time from each CardLost to the bank's CardBlocked: the window in which a lost card could be used."),
        _figure(line_chart("Purchases by day", days, _purchase_series(series.get("purchases_by_day", {}))),
                "POS purchases approved, and refused by response code (41 lost card, 51 funds, 55 PIN, "
                "57 cash or transfer, 58 not designated, 75 PIN tries exceeded)."),
        _figure(grouped_bars("Balances at month end (yuan)", months,
                             [Series("all accounts", totals), Series("median account", medians)]),
                "Personal accounts at each month end: every balance together, and the median account right "
                "after its transfer."),
        _figure(histogram("Replacement waits", [Series("waits", series.get("replacement_waits", []))],
                          unit=" d"),
                "Working days from a replacement's request to its card being ready."),
    ])


def simulation_html(report: Mapping[str, Any]) -> str:
    """The HTML report of one ``medcard simulate`` run."""
    title = (f"medcard simulation: {report.get('persons')} persons, {report.get('months')} months, "
             f"seed {report.get('seed')}")
    purchases = report.get("purchases", {})
    figures = [
        ("business days", f"{report.get('start_date')} to {report.get('end_date')}"),
        ("events published", report.get("events_published", 0)),
        ("wall time (s)", report.get("wall_seconds", 0)),
        ("purchases authorised", purchases.get("authorised", 0)),
        ("purchases declined", sum(purchases.get("declined", {}).values())),
        ("fraud attempts blocked", report.get("fraud_attempts_blocked", 0)),
        ("monthly transfers (yuan)", report.get("monthly_transfers", {}).get("total_fen", 0) / 100),
    ]
    invariants = [(name, ok) for name, ok in report.get("invariants", {}).items()]
    body = (_table(["figure", "value"], figures) + "<h2>Invariants</h2>" + _table(["invariant", "held"], invariants)
            + "<h2>Charts</h2>" + simulation_charts(report.get("series", {})))
    return _page(title, body)


def comparison_html(comparison: Mapping[str, Any]) -> str:
    """The HTML report of ``medcard compare``: per policy, the figures of both sides with
    their spread over the seeds, and the charts of both overlaid."""
    title = (f"medcard policy comparison: {comparison.get('persons')} persons, {comparison.get('months')} months, "
             f"seeds {', '.join(map(str, comparison.get('seeds', [])))}")
    parts = []
    for policy in comparison.get("policies", []):
        a, b = policy["a"], policy["b"]
        parts.append(f"<h2>{escape(policy['name'])}: {escape(a['label'])} against {escape(b['label'])}</h2>")
        parts.append(_table(["figure", a["label"], b["label"], "difference", "beyond the seeds' noise"],
                            [(f["figure"], f"{_fmt(f['a_mean'])} ± {_fmt(f['a_spread'])}",
                              f"{_fmt(f['b_mean'])} ± {_fmt(f['b_spread'])}", f["difference"], f["outside_noise"])
                             for f in policy["figures"]]))
        parts.append(_overlaid(a, b))
    return _page(title, "".join(parts))


def _overlaid(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """Both sides' first seed drawn over each other."""
    sa, sb = a["reports"][0].get("series", {}), b["reports"][0].get("series", {})
    ca, cb = colour_of(0), colour_of(1)
    days = [d[5:] for d in sa.get("days", [])]

    def daily_total(s: Mapping[str, Any], key: str) -> list[float]:
        rows = list(s.get(key, {}).values())
        return [sum(r[i] for r in rows if i < len(r)) for i in range(len(days))]

    def refused(s: Mapping[str, Any]) -> list[float]:
        rows = [v for k, v in s.get("purchases_by_day", {}).items() if k != "approved"]
        return [sum(r[i] for r in rows if i < len(r)) for i in range(len(days))]

    return "".join([
        _figure(line_chart("Events per business day", days, [Series(a["label"], daily_total(sa, "events_by_day"), ca),
                                                             Series(b["label"], daily_total(sb, "events_by_day"), cb)]),
                "All events per business day, both policies (first seed)."),
        _figure(histogram("Loss to block", [Series(a["label"], sa.get("loss_to_block_ms", []), ca),
                                            Series(b["label"], sb.get("loss_to_block_ms", []), cb)], unit=" ms"),
                "Time from CardLost to the bank's CardBlocked, both policies."),
        _figure(line_chart("Purchases refused by day", days, [Series(a["label"], refused(sa), ca),
                                                              Series(b["label"], refused(sb), cb)]),
                "POS purchases refused, whatever the reason, both policies."),
        _figure(histogram("Replacement waits", [Series(a["label"], sa.get("replacement_waits", []), ca),
                                                Series(b["label"], sb.get("replacement_waits", []), cb)],
                          unit=" d"),
                "Working days from request to ready, both policies."),
    ])
