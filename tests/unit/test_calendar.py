"""The business calendar: weekends, holidays, month ends, working-day arithmetic, and when a
replacement card is ready (working days after the bank's stamp)."""

from __future__ import annotations

from datetime import date

from services.cards.domain import ready_on
from shared.calendar import BusinessCalendar, last_day_of_month, months_ended, parse_holidays

CAL = BusinessCalendar()


def test_weekends_are_not_working_days() -> None:
    assert CAL.is_working_day(date(2026, 11, 20))  # Friday
    assert not CAL.is_working_day(date(2026, 11, 21))  # Saturday
    assert not CAL.is_working_day(date(2026, 11, 22))  # Sunday


def test_fixed_public_holidays_are_not_working_days() -> None:
    assert not CAL.is_working_day(date(2026, 10, 1))  # National Day, a Thursday
    assert not CAL.is_working_day(date(2027, 1, 1))


def test_configured_holidays_count_too() -> None:
    cal = BusinessCalendar(extra_holidays=parse_holidays("2026-02-17, 2026-02-18"))
    assert not cal.is_working_day(date(2026, 2, 17))
    assert CAL.is_working_day(date(2026, 2, 17))


def test_fifteen_working_days_skip_three_weekends() -> None:
    # Monday 2 Nov 2026 + 15 working days = Monday 23 Nov.
    assert CAL.add_working_days(date(2026, 11, 2), 15) == date(2026, 11, 23)


def test_working_day_arithmetic_across_national_day() -> None:
    # Tue 29 Sep 2026 + 3 working days: 30 Sep, then 1-7 Oct are holidays, 8 and 9 Oct.
    assert CAL.add_working_days(date(2026, 9, 29), 3) == date(2026, 10, 9)
    assert CAL.working_days_between(date(2026, 9, 29), date(2026, 10, 9)) == 3


def test_a_stamp_on_a_saturday_counts_from_the_next_monday() -> None:
    assert CAL.add_working_days(date(2026, 11, 21), 1) == date(2026, 11, 23)


def test_months_ended_lists_each_month_crossed() -> None:
    assert list(months_ended(date(2026, 1, 31), date(2026, 2, 1))) == ["2026-01"]
    assert list(months_ended(date(2026, 11, 30), date(2027, 2, 3))) == ["2026-11", "2026-12", "2027-01"]
    assert list(months_ended(date(2026, 1, 5), date(2026, 1, 31))) == []


def test_last_day_of_month_handles_leap_years_and_december() -> None:
    assert last_day_of_month("2028-02") == date(2028, 2, 29)
    assert last_day_of_month("2026-12") == date(2026, 12, 31)


# Issue 17: the calendar is visible (GET /v1/calendar on every service), with names.

def test_each_public_holiday_has_its_name() -> None:
    assert CAL.holiday_name(date(2027, 1, 1)) == "New Year's Day"
    assert CAL.holiday_name(date(2027, 5, 3)) == "Labour Day"
    assert CAL.holiday_name(date(2027, 10, 7)) == "National Day"
    assert CAL.holiday_name(date(2027, 10, 8)) is None


def test_configured_holidays_may_be_named() -> None:
    cal = BusinessCalendar.from_setting("2027-02-06=Spring Festival, 2027-02-07")
    assert cal.holiday_name(date(2027, 2, 6)) == "Spring Festival"
    assert cal.holiday_name(date(2027, 2, 7)) == "public holiday (MEDCARD_HOLIDAYS)"
    assert parse_holidays("2027-02-06=Spring Festival") == frozenset({date(2027, 2, 6)})


def test_the_days_of_a_range_say_which_are_working_days_and_which_holidays() -> None:
    days = CAL.days(date(2027, 4, 30), date(2027, 5, 6))
    assert [(d.date.day, d.working_day, d.holiday) for d in days] == [
        (30, True, None), (1, False, "Labour Day"), (2, False, "Labour Day"), (3, False, "Labour Day"),
        (4, False, "Labour Day"), (5, False, "Labour Day"), (6, True, None)]


def test_the_issue_example_a_stamp_on_3_may_2027_is_ready_on_26_may() -> None:
    assert CAL.add_working_days(date(2027, 5, 3), 15) == date(2027, 5, 26)


# ---- a replacement card's ready date ----------------------------------------------------

PLAIN = BusinessCalendar(fixed_holidays=frozenset())
"""Weekends only: the working-day arithmetic of a replacement card's wait, alone."""


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
