"""Static SVG charts for the HTML report: no script, no network, every text escaped.

Each function answers one ``<svg>`` element as a string; an empty series still draws its
axes and says "no data" so that a reader (and the browser test) can tell an empty chart
from a missing one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 46
PALETTE = ("#1f5fbf", "#b42318", "#18794e", "#9a6700", "#9d2fa0", "#0e7490", "#6b7280", "#c2410c", "#4d7c0f",
           "#be185d")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]
    colour: str = ""


def colour_of(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _frame(title: str, body: list[str], kind: str, x_labels: Sequence[str], top: float, unit: str) -> str:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [f'<svg class="chart" data-kind="{kind}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
             f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fbfcfd" stroke="#e3e6ea"/>']
    for i in range(5):  # horizontal grid and the scale
        value = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eef0f3"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_short(value)}{escape(unit)}</text>')
    step = max(1, len(x_labels) // 8)
    for i, label in enumerate(x_labels):
        if i % step == 0 or i == len(x_labels) - 1:
            x = LEFT + plot_w * (i + 0.5) / max(1, len(x_labels))
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{escape(label)}</text>')
    if not body:
        parts.append(f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data</text>')
    parts += body
    parts.append("</svg>")
    return "".join(parts)


def _short(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def line_chart(title: str, x_labels: Sequence[str], series: Sequence[Series], unit: str = "") -> str:
    """One line per series over the same x positions."""
    top = max([v for s in series for v in s.values] + [1.0])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    body = []
    for i, s in enumerate(series):
        if not s.values:
            continue
        points = " ".join(f"{LEFT + plot_w * (j + 0.5) / max(1, len(x_labels)):.1f},"
                          f"{TOP + plot_h - plot_h * v / top:.1f}" for j, v in enumerate(s.values))
        body.append(f'<polyline data-series="{escape(s.name)}" points="{points}" fill="none" '
                    f'stroke="{s.colour or colour_of(i)}" stroke-width="2"/>')
    return _frame(title, body, "line", x_labels, top, unit) + legend(series)


def stacked_bars(title: str, x_labels: Sequence[str], series: Sequence[Series], unit: str = "") -> str:
    """Bars stacked per x position, one colour per series."""
    totals = [sum(s.values[j] for s in series if j < len(s.values)) for j in range(len(x_labels))]
    top = max([*totals, 1.0])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(x_labels))
    body = []
    for j in range(len(x_labels)):
        base = 0.0
        for i, s in enumerate(series):
            v = s.values[j] if j < len(s.values) else 0
            if v <= 0:
                continue
            h = plot_h * v / top
            y = TOP + plot_h - plot_h * base / top - h
            body.append(f'<rect data-series="{escape(s.name)}" x="{LEFT + slot * j + slot * 0.1:.1f}" y="{y:.1f}" '
                        f'width="{slot * 0.8:.1f}" height="{h:.1f}" fill="{s.colour or colour_of(i)}">'
                        f'<title>{escape(x_labels[j])} {escape(s.name)}: {_short(v)}</title></rect>')
            base += v
    return _frame(title, body, "bars", x_labels, top, unit) + legend(series)


def grouped_bars(title: str, x_labels: Sequence[str], series: Sequence[Series], unit: str = "") -> str:
    """Bars side by side per x position (one per series): two policies overlaid, say."""
    top = max([v for s in series for v in s.values] + [1.0])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(x_labels))
    width = slot * 0.8 / max(1, len(series))
    body = []
    for i, s in enumerate(series):
        for j, v in enumerate(s.values):
            if v <= 0:
                continue
            h = plot_h * v / top
            body.append(f'<rect data-series="{escape(s.name)}" x="{LEFT + slot * j + slot * 0.1 + width * i:.1f}" '
                        f'y="{TOP + plot_h - h:.1f}" width="{width:.1f}" height="{h:.1f}" '
                        f'fill="{s.colour or colour_of(i)}"><title>{escape(x_labels[j])} {escape(s.name)}: '
                        f'{_short(v)}</title></rect>')
    return _frame(title, body, "bars", x_labels, top, unit) + legend(series)


def histogram(title: str, samples: Sequence[Series], bins: int = 12, unit: str = "") -> str:
    """The distribution of each sample over shared bins, as a share (%) of its values."""
    everything = [v for s in samples for v in s.values]
    if not everything:
        return _frame(title, [], "histogram", [], 1.0, "%") + legend(samples)
    high = max(everything) or 1.0
    labels = [f"{_short(high / bins * i)}-{_short(high / bins * (i + 1))}{unit}" for i in range(bins)]
    shares = []
    for s in samples:
        counts = [0] * bins
        for v in s.values:
            counts[max(0, min(bins - 1, int(v / (high / bins))))] += 1  # below zero: the first bin
        shares.append(Series(s.name, [c / max(1, len(s.values)) * 100 for c in counts], s.colour))
    return grouped_bars(title, labels, shares, "%").replace('data-kind="bars"', 'data-kind="histogram"', 1)


def legend(series: Sequence[Series]) -> str:
    items = "".join(f'<span class="key"><i style="background:{s.colour or colour_of(i)}"></i>{escape(s.name)}</span>'
                    for i, s in enumerate(series))
    return f'<div class="legend">{items}</div>' if len(series) > 1 else ""
