"""The policies ``medcard compare`` can set side by side, the figures each is judged by,
and how a difference is told from the noise of the seeds. Pure: no I/O.

A policy is a pair of settings of the services (their ``MEDCARD_*`` environment); the
same seeded population lives the same months under each, and the figures are read from
each run's verified report.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Report = Mapping[str, Any]


def _get(report: Report, *path: str) -> float:
    value: Any = report
    for key in path:
        value = value.get(key, 0) if isinstance(value, Mapping) else 0
    return float(value or 0)


@dataclass(frozen=True)
class Side:
    label: str
    env: Mapping[str, str]


@dataclass(frozen=True)
class Figure:
    name: str
    read: Callable[[Report], float]
    better: str = "lower"
    """Which way is better for the people of the simulation: ``lower`` or ``higher``."""


@dataclass(frozen=True)
class Policy:
    key: str
    name: str
    a: Side
    b: Side
    figures: tuple[Figure, ...]
    question: str


POLICIES: dict[str, Policy] = {p.key: p for p in (
    Policy(
        "loss-propagation", "Loss propagation to the bank",
        Side("instant", {"MEDCARD_BANK_LOSS_PROPAGATION": "instant"}),
        Side("nightly", {"MEDCARD_BANK_LOSS_PROPAGATION": "nightly"}),
        (Figure("fraudulent purchases approved (inside the loss window)",
                lambda r: _get(r, "loss_to_block", "purchases_inside_window")),
         Figure("fen lost to them", lambda r: _get(r, "loss_to_block", "fen_inside_window")),
         Figure("fraud alerts sent", lambda r: _get(r, "fraud_attempts_blocked"), "higher"),
         Figure("loss to block p99 (ms)", lambda r: _get(r, "loss_to_block", "latency_ms_p99"))),
        "What if the bank applied the day's loss reports in one batch at the end of the business day, "
        "as many legacy bank links do, instead of as soon as each arrives?"),
    Policy(
        "replacement-wait", "Replacement wait",
        Side("15 working days", {"MEDCARD_REPLACEMENT_WAIT_WORKING_DAYS": "15"}),
        Side("7 working days", {"MEDCARD_REPLACEMENT_WAIT_WORKING_DAYS": "7"}),
        (Figure("person-days without a usable card", lambda r: _get(r, "cardless", "person_days")),
         Figure("purchases forgone for want of a card", lambda r: _get(r, "cardless", "purchases_forgone")),
         Figure("replacements collected", lambda r: _get(r, "replacements", "collected"), "higher")),
        "Document 004 names both waits: 15 working days after the bank's stamp, and 7 days for a loss "
        "handled at the bank."),
    Policy(
        "pin-tries", "PIN tries before the lock",
        Side("3 tries", {"MEDCARD_PIN_MAX_FAILURES": "3"}),
        Side("5 tries", {"MEDCARD_PIN_MAX_FAILURES": "5"}),
        (Figure("thieves' purchases approved", lambda r: _get(r, "pin", "thief_purchases_approved")),
         Figure("thieves' purchases stopped", lambda r: _get(r, "pin", "thief_purchases_stopped"), "higher"),
         Figure("cardholders locked out by their own mistakes", lambda r: _get(r, "pin", "holders_locked_out"))),
        "More tries forgive cardholders who mistype or half-remember their PIN, and give a thief who "
        "guesses more chances."),
)}


@dataclass(frozen=True)
class Spread:
    mean: float
    low: float
    high: float

    @property
    def half_range(self) -> float:
        return (self.high - self.low) / 2


def spread(values: Sequence[float]) -> Spread:
    return Spread(statistics.fmean(values) if values else 0.0, min(values, default=0.0), max(values, default=0.0))


def beyond_noise(a: Sequence[float], b: Sequence[float]) -> bool:
    """The two sides differ beyond what the seeds alone move: with several seeds, their
    ranges do not overlap; with one seed nothing can be told (False)."""
    if len(a) < 2 or len(b) < 2:
        return False
    sa, sb = spread(a), spread(b)
    return sa.high < sb.low or sb.high < sa.low


def judge(policy: Policy, a_reports: Sequence[Report], b_reports: Sequence[Report]) -> list[dict[str, Any]]:
    """Per figure: each side's mean and half range over the seeds, the difference (b - a),
    and whether it is beyond the seeds' noise."""
    rows = []
    for figure in policy.figures:
        va, vb = [figure.read(r) for r in a_reports], [figure.read(r) for r in b_reports]
        sa, sb = spread(va), spread(vb)
        rows.append({"figure": figure.name, "better": figure.better, "a_values": va, "b_values": vb,
                     "a_mean": round(sa.mean, 2), "a_spread": round(sa.half_range, 2),
                     "b_mean": round(sb.mean, 2), "b_spread": round(sb.half_range, 2),
                     "difference": round(sb.mean - sa.mean, 2), "outside_noise": beyond_noise(va, vb)})
    return rows
