"""The run's series for the HTML report, folded event by event as the verifier reads the
topics (the events themselves are not kept). Pure: no I/O.

An event's business day is the ``business_date`` it carries, or else the day the clock
was on at its instant (``BusinessDateAdvanced`` instants, from the clock topic, which is
read first).
"""

from __future__ import annotations

import bisect
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from shared.calendar import BusinessCalendar

LOSS_KINDS = ("CardLost",)


def _instant(attrs: dict[str, str]) -> datetime | None:
    text = attrs.get("time")
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class Series:
    calendar: BusinessCalendar
    start: date
    """The business date before the first advance (the run's first day)."""
    _advances: list[datetime] = field(default_factory=list)
    _dates: list[date] = field(default_factory=list)
    events: defaultdict[str, Counter[date]] = field(default_factory=lambda: defaultdict(Counter))
    purchases: defaultdict[str, Counter[date]] = field(default_factory=lambda: defaultdict(Counter))
    balances: defaultdict[str, array[int]] = field(default_factory=lambda: defaultdict(lambda: array("q")))
    """Month -> each account's balance right after its monthly transfer."""
    credits: Counter[str] = field(default_factory=Counter)
    debits: Counter[str] = field(default_factory=Counter)
    waits: list[int] = field(default_factory=list)
    _requested: dict[str, date] = field(default_factory=dict)
    _cardless_since: dict[str, date] = field(default_factory=dict)
    _replacement_cards: set[str] = field(default_factory=set)
    cardless_days: int = 0
    last_day: date | None = None

    def day_of(self, attrs: dict[str, str], data: dict[str, Any]) -> date:
        if "business_date" in data:
            return date.fromisoformat(str(data["business_date"]))
        at = _instant(attrs)
        if at is None or not self._advances:
            return self.start
        i = bisect.bisect_right(self._advances, at)
        return self._dates[i - 1] if i else self.start

    def add(self, service: str, name: str, attrs: dict[str, str], data: dict[str, Any]) -> None:
        if name == "BusinessDateAdvanced":
            at = _instant(attrs)
            if at is not None and (not self._advances or at >= self._advances[-1]):
                self._advances.append(at)
                self._dates.append(date.fromisoformat(str(data["date"])))
        day = self.day_of(attrs, data)
        self.last_day = max(self.last_day or day, day)
        self.events[name][day] += 1
        if service == "bank":
            self._bank(name, day, data)
        elif service == "cards":
            self._cards(name, day, data)

    def _bank(self, name: str, day: date, d: dict[str, Any]) -> None:
        if name == "PurchaseAuthorised":
            self.purchases["approved"][day] += 1
            self.debits[day.isoformat()[:7]] += int(d["amount_fen"])
        elif name == "PurchaseDeclined":
            self.purchases[str(d.get("reason_code", "?"))][day] += 1
        elif name == "MonthlyTransfer":
            self.balances[str(d["month"])].append(int(d["balance_after_fen"]))
            self.credits[str(d["month"])] += int(d["amount_fen"])

    def _cards(self, name: str, day: date, d: dict[str, Any]) -> None:
        person = str(d.get("person_id", ""))
        if name in LOSS_KINDS or name == "ReplacementRequested":
            self._cardless_since.setdefault(person, day)
            if name == "ReplacementRequested":
                self._requested[str(d["receipt_number"])] = day
        elif name == "ReplacementReady":
            requested = self._requested.pop(str(d["receipt_number"]), None)
            if requested is not None:
                self.waits.append(self.calendar.working_days_between(requested, date.fromisoformat(str(d["ready_on"]))))
        elif name == "CardIssued" and d.get("replaces"):
            self._replacement_cards.add(str(d["card_number"]))
        elif name == "CardActivated" and str(d.get("card_number")) in self._replacement_cards:
            since = self._cardless_since.pop(person, None)
            if since is not None:
                self.cardless_days += (day - since).days

    def person_days_without_a_card(self, end: date) -> int:
        """Days from a card's loss (or its replacement's request) to the new card's activation;
        those still waiting count until ``end``."""
        return self.cardless_days + sum((end - since).days for since in self._cardless_since.values())

    def month_ends(self) -> dict[str, dict[str, int]]:
        """Per month: every balance together (the credits of the months up to it, its own
        month-end transfer included, less the purchases of those months) and the median
        account right after its transfer."""
        out, total = {}, 0
        for month in sorted(set(self.credits) | set(self.debits)):
            total += self.credits[month] - self.debits[month]
            after = sorted(self.balances.get(month, ()))
            if after:
                out[month] = {"accounts": len(after), "total_fen": total, "median_fen": after[len(after) // 2]}
        return out

    def result(self, loss_to_block_ms: list[float]) -> dict[str, Any]:
        """The ``series`` of the report (see medcard/report/html.py)."""
        if self.last_day is None:
            days: list[date] = []
        else:
            span = (self.last_day - self.start).days + 1
            days = [date.fromordinal(self.start.toordinal() + i) for i in range(span)]
        return {
            "days": [d.isoformat() for d in days],
            "events_by_day": {k: [v.get(d, 0) for d in days] for k, v in sorted(self.events.items())},
            "purchases_by_day": {k: [v.get(d, 0) for d in days] for k, v in sorted(self.purchases.items())},
            "loss_to_block_ms": [round(x, 3) for x in loss_to_block_ms],
            "balances_at_month_end": self.month_ends(),
            "replacement_waits": list(self.waits),
        }
