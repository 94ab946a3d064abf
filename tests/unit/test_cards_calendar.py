"""When a replacement card is ready: working days on the business calendar after the bank's stamp."""

from __future__ import annotations

from datetime import date

from services.cards.domain import ready_on
from shared.calendar import BusinessCalendar, parse_holidays

PLAIN = BusinessCalendar(fixed_holidays=frozenset())


def test_weekends_are_not_counted() -> None:
    # Friday 9 January 2026 + 1 working day = Monday 12 January.
    assert ready_on(PLAIN, date(2026, 1, 9), 1) == date(2026, 1, 12)
    # 15 working days are three working weeks.
    assert ready_on(PLAIN, date(2026, 1, 5), 15) == date(2026, 1, 26)


def test_a_stamp_on_a_weekend_counts_from_the_next_working_day() -> None:
    assert ready_on(PLAIN, date(2026, 1, 10), 1) == date(2026, 1, 12)


def test_a_configured_holiday_is_skipped() -> None:
    calendar = BusinessCalendar(parse_holidays("2026-01-14, 2026-01-15"), fixed_holidays=frozenset())
    assert ready_on(calendar, date(2026, 1, 12), 3) == date(2026, 1, 19)


def test_the_fixed_public_holidays_are_skipped() -> None:
    # 1 October to 7 October is the National Day week; 30 September 2026 is a Wednesday.
    assert ready_on(BusinessCalendar(), date(2026, 9, 30), 1) == date(2026, 10, 8)


def test_the_wait_runs_across_a_month_end() -> None:
    # Thursday 22 January 2026 + 15 working days: 23, 26-30 January, 2-6 and 9-12 February.
    assert ready_on(PLAIN, date(2026, 1, 22), 15) == date(2026, 2, 12)


def test_the_default_wait_skips_new_year() -> None:
    # Monday 29 December 2025: 1 January 2026 is a holiday, so 15 working days end on 20 January.
    assert ready_on(BusinessCalendar(), date(2025, 12, 29), 15) == date(2026, 1, 20)
