"""The HTML report: self-contained (no script, nothing fetched), every chart drawn from its
series, every text escaped, an empty series said so rather than drawn blank."""

from __future__ import annotations

import re

from medcard.report.html import comparison_html, simulation_html

DAYS = ["2026-02-02", "2026-02-03", "2026-02-04"]
SERIES = {
    "days": DAYS,
    "events_by_day": {"PurchaseAuthorised": [40, 52, 38], "CardLost": [1, 0, 2], "<b>odd</b>": [0, 1, 0]},
    "purchases_by_day": {"approved": [40, 52, 38], "41": [0, 1, 1], "55": [2, 3, 1]},
    "loss_to_block_ms": [12.5, 40.1, 8.0, -100.0],  # below zero: the bank stopped the card first
    "balances_at_month_end": {"2026-02": {"accounts": 3, "total_fen": 22150, "median_fen": 9300}},
    "replacement_waits": [21, 22, 15],
}
REPORT = {"persons": 3, "months": 1, "seed": 7, "start_date": DAYS[0], "end_date": DAYS[-1], "events_published": 134,
          "purchases": {"authorised": 130, "declined": {"41": 2, "55": 6}}, "invariants": {"money_conserved": True},
          "monthly_transfers": {"count": 3, "total_fen": 22150}, "series": SERIES}


def charts(html: str) -> list[str]:
    return re.findall(r"<svg .*?</svg>", html, flags=re.S)


def test_a_simulation_report_draws_its_five_charts_without_scripts_or_network() -> None:
    html = simulation_html(REPORT)
    assert "<script" not in html and "<link" not in html and "src=" not in html
    assert re.findall(r"https?://[^\"']+", html) == ["http://www.w3.org/2000/svg"] * 5  # the SVG namespace only
    drawn = charts(html)
    assert len(drawn) == 5
    for chart in drawn:
        assert "<rect data-series" in chart or "<polyline" in chart, chart[:200]
        assert "no data" not in chart


def test_texts_are_escaped_and_an_empty_series_says_no_data() -> None:
    html = simulation_html({**REPORT, "series": {**SERIES, "replacement_waits": []}})
    assert "<b>odd</b>" not in html and "&lt;b&gt;odd&lt;/b&gt;" in html
    assert 'class="empty"' in charts(html)[4]


def test_a_comparison_overlays_both_policies_with_their_figures() -> None:
    other = {**SERIES, "loss_to_block_ms": [300.0, 900.0, 1200.0]}
    comparison = {"persons": 3, "months": 1, "seeds": [1, 2], "policies": [{
        "name": "loss propagation",
        "a": {"label": "instant", "reports": [{"series": SERIES}]},
        "b": {"label": "nightly", "reports": [{"series": other}]},
        "figures": [{"figure": "fraudulent purchases approved", "a_mean": 0.0, "a_spread": 0.0, "b_mean": 3.5,
                     "b_spread": 0.5, "difference": 3.5, "outside_noise": True}],
    }]}
    html = comparison_html(comparison)
    assert "instant against nightly" in html and "3.50 ± 0.50" in html
    drawn = charts(html)
    assert len(drawn) == 4
    assert all('data-series="instant"' in c and 'data-series="nightly"' in c for c in drawn)
