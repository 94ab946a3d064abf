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


# Fixed-date public holidays (month, day) and their names. Lunar holidays move each year:
# add them with MEDCARD_HOLIDAYS (comma-separated ISO dates, each optionally named:
# "2027-02-06=Spring Festival").
HOLIDAY_NAMES: dict[tuple[int, int], str] = {
    (1, 1): "New Year's Day",
    **{(5, d): "Labour Day" for d in range(1, 6)},
    **{(10, d): "National Day" for d in range(1, 8)},
}
FIXED_HOLIDAYS: frozenset[tuple[int, int]] = frozenset(HOLIDAY_NAMES)
CONFIGURED = "public holiday (MEDCARD_HOLIDAYS)"
"""The name of a configured holiday given without one."""


def _entries(text: str) -> list[tuple[date, str]]:
    out = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            day, _, name = part.partition("=")
            out.append((date.fromisoformat(day.strip()), name.strip() or CONFIGURED))
    return out


def parse_holidays(text: str) -> frozenset[date]:
    return frozenset(day for day, _ in _entries(text))


def parse_holiday_names(text: str) -> tuple[tuple[date, str], ...]:
    return tuple(sorted(_entries(text)))


@dataclass(frozen=True)
class CalendarDay:
    date: date
    working_day: bool
    holiday: str | None
    """The public holiday's name, if the day is one (a holiday on a weekend too)."""


@dataclass(frozen=True)
class BusinessCalendar:
    """Working days are Monday to Friday except public holidays. The make-up working days on
    a weekend that China's State Council announces around long holidays are not modelled."""

    extra_holidays: frozenset[date] = field(default_factory=frozenset)
    fixed_holidays: frozenset[tuple[int, int]] = FIXED_HOLIDAYS
    extra_names: tuple[tuple[date, str], ...] = ()

    @classmethod
    def from_setting(cls, holidays: str) -> BusinessCalendar:
        """The calendar with the holidays of MEDCARD_HOLIDAYS on top of the fixed ones."""
        return cls(parse_holidays(holidays), extra_names=parse_holiday_names(holidays))

    def holiday_name(self, d: date) -> str | None:
        if d in self.extra_holidays:
            return dict(self.extra_names).get(d, CONFIGURED)
        if (d.month, d.day) in self.fixed_holidays:
            return HOLIDAY_NAMES.get((d.month, d.day), "public holiday")
        return None

    def is_holiday(self, d: date) -> bool:
        return (d.month, d.day) in self.fixed_holidays or d in self.extra_holidays

    def is_working_day(self, d: date) -> bool:
        return d.weekday() < 5 and not self.is_holiday(d)

    def days(self, start: date, end: date) -> list[CalendarDay]:
        """Every day of [start, end]: working or not, and the holiday's name."""
        return [CalendarDay(d, self.is_working_day(d), self.holiday_name(d))
                for d in (start + timedelta(days=i) for i in range((end - start).days + 1))]

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
