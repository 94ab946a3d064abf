"""The business calendar: working days exclude weekends and public holidays."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

CHINA = timedelta(hours=8)
"""China's offset from UTC (no daylight saving): the business calendar's day."""


def real_today() -> date:
    """Today's date in China."""
    return (datetime.now(UTC) + CHINA).date()


# Fixed-date public holidays (month, day). Lunar holidays move each year: add them
# with MEDCARD_HOLIDAYS (comma-separated ISO dates).
FIXED_HOLIDAYS: frozenset[tuple[int, int]] = frozenset(
    {(1, 1), (5, 1), (5, 2), (5, 3), (5, 4), (5, 5), (10, 1), (10, 2), (10, 3), (10, 4), (10, 5), (10, 6), (10, 7)}
)


def parse_holidays(text: str) -> frozenset[date]:
    return frozenset(date.fromisoformat(p.strip()) for p in text.split(",") if p.strip())


@dataclass(frozen=True)
class BusinessCalendar:
    extra_holidays: frozenset[date] = field(default_factory=frozenset)
    fixed_holidays: frozenset[tuple[int, int]] = FIXED_HOLIDAYS

    def is_holiday(self, d: date) -> bool:
        return (d.month, d.day) in self.fixed_holidays or d in self.extra_holidays

    def is_working_day(self, d: date) -> bool:
        return d.weekday() < 5 and not self.is_holiday(d)

    def add_working_days(self, start: date, n: int) -> date:
        """The n-th working day after start (start itself never counts)."""
        if n < 0:
            raise ValueError("n must be >= 0")
        d = start
        while n:
            d += timedelta(days=1)
            if self.is_working_day(d):
                n -= 1
        return d

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]."""
        return sum(1 for i in range(1, (end - start).days + 1) if self.is_working_day(start + timedelta(days=i)))


def month_of(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def months_ended(previous: date, current: date) -> Iterable[str]:
    """The months whose last day lies in [previous, current): they end on this advance."""
    y, m = previous.year, previous.month
    while (y, m) < (current.year, current.month):
        yield f"{y:04d}-{m:02d}"
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)


def last_day_of_month(month: str) -> date:
    y, m = (int(p) for p in month.split("-"))
    first_next = date(y + 1, 1, 1) if m == 12 else date(y, m + 1, 1)
    return first_next - timedelta(days=1)
