"""The business clock as pure rules: it only moves forward, one published day at a time,
announcing each month it leaves behind."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from pydantic import BaseModel

from shared.calendar import last_day_of_month, months_ended
from shared.domain import Conflict, Decision, Invalid
from shared.events import BusinessDateAdvanced, EventData, MonthEnded

CLOCK_ID = "clock"
MAX_DAYS = 3660
"""The longest advance in one call: each day is an event in the clock's one document."""
LAST_DATE = date(9998, 12, 31)
"""The clock stops here: every service adds working days and months to the business
date, and a year of room keeps that arithmetic inside the calendar (9999-12-31)."""


class ClockState(BaseModel):
    date: date


@dataclass(frozen=True)
class Advanced:
    previous_date: date
    date: date
    months_ended: list[str]


class ClockRunning(Conflict):
    """The clock is started once: ``start`` is for its first advance only."""

    def __init__(self, current: date) -> None:
        super().__init__(f"the clock is already running (business date {current}); 'start' is for the first call")


class PastLastDate(Invalid):
    """The clock stops at ``LAST_DATE``."""

    def __init__(self, current: date) -> None:
        super().__init__(f"the business clock stops at {LAST_DATE}: it is {current}")


class ClockBackwards(Conflict):
    """The clock only moves forward."""

    def __init__(self, current: date, target: date) -> None:
        super().__init__(f"the business clock cannot move backwards: it is {current}, asked for {target}")


class AdvanceTooLong(Invalid):
    """At most ``MAX_DAYS`` in one advance."""

    def __init__(self) -> None:
        super().__init__(f"the clock advances at most {MAX_DAYS} days in one call")


def check_start_on_first_call(state: ClockState | None, start: date | None) -> None:
    """Raise if a running clock is given another ``start`` than its date."""
    if state is not None and start is not None and start != state.date:
        raise ClockRunning(state.date)


def check_before_last_date(current: date, days: int | None, to: date | None) -> None:
    """Raise if the clock is, or would be moved, past ``LAST_DATE``."""
    room = (LAST_DATE - current).days
    if (to is None and (days or 0) > room) or (to is not None and to > LAST_DATE) or current > LAST_DATE:
        raise PastLastDate(current)


def check_forward(current: date, target: date) -> None:
    """Raise if ``target`` is before the clock's date."""
    if target < current:
        raise ClockBackwards(current, target)


def check_advance_length(current: date, target: date) -> None:
    """Raise if the advance is longer than ``MAX_DAYS``."""
    if (target - current).days > MAX_DAYS:
        raise AdvanceTooLong()


def advance(*, today: date, start: date | None = None, days: int | None = None,
            to: date | None = None) -> Callable[[ClockState | None], Decision[ClockState]]:
    """Move the clock ``days`` forward or ``to`` a date; the first call starts it at
    ``start`` (or ``today``, the real date in China)."""
    def decide(state: ClockState | None) -> Decision[ClockState]:
        check_start_on_first_call(state, start)
        current = state.date if state is not None else (start or today)
        check_before_last_date(current, days, to)
        target = to if to is not None else current + timedelta(days=days or 0)
        check_forward(current, target)
        check_advance_length(current, target)
        events: list[EventData] = []
        ended: list[str] = []
        day = current
        while day < target:
            previous, day = day, day + timedelta(days=1)
            events.append(BusinessDateAdvanced(date=day, previous_date=previous))
            for month in months_ended(previous, day):
                events.append(MonthEnded(month=month, closing_date=last_day_of_month(month)))
                ended.append(month)
        return Decision(ClockState(date=target), events, Advanced(current, target, ended))
    return decide


def catch_up(*, today: date) -> Callable[[ClockState | None], Decision[ClockState]]:
    """The clock that follows the real date: bring the business date up to ``today``,
    one published day at a time; a clock already there (or moved past it by an
    operator) is left alone."""
    def decide(state: ClockState | None) -> Decision[ClockState]:
        if state is not None and state.date >= today:
            return Decision(state)
        return advance(today=today, to=today)(state)
    return decide
