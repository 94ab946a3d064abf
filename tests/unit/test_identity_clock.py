"""The business clock: it moves forward one published day at a time and announces each month that ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import date

import pytest

from services.identity.clock import ClockState, advance, catch_up
from services.identity.config import IdentitySettings
from services.identity.followers import ClockFollowers, services_behind
from shared.domain import Conflict, Invalid
from shared.events import BusinessDateAdvanced, MonthEnded

TODAY = date(2026, 1, 5)


def test_the_first_advance_starts_from_today() -> None:
    decision = advance(today=TODAY, days=2)(None)
    assert decision.state == ClockState(date=date(2026, 1, 7))
    assert decision.events == [BusinessDateAdvanced(date=date(2026, 1, 6), previous_date=TODAY),
                               BusinessDateAdvanced(date=date(2026, 1, 7), previous_date=date(2026, 1, 6))]


def test_the_first_advance_may_start_from_a_given_date() -> None:
    decision = advance(today=TODAY, start=date(2025, 12, 30), to=date(2026, 1, 1))(None)
    assert [type(e).__name__ for e in decision.events] == ["BusinessDateAdvanced", "BusinessDateAdvanced",
                                                             "MonthEnded"]
    assert decision.events[-1] == MonthEnded(month="2025-12", closing_date=date(2025, 12, 31))


def test_every_month_crossed_ends_once_after_the_day_that_leaves_it() -> None:
    decision = advance(today=TODAY, to=date(2026, 3, 2))(ClockState(date=date(2026, 1, 30)))
    ended = [(i, e.month) for i, e in enumerate(decision.events) if isinstance(e, MonthEnded)]
    assert [m for _, m in ended] == ["2026-01", "2026-02"]
    for i, _month in ended:
        before = decision.events[i - 1]
        assert isinstance(before, BusinessDateAdvanced) and before.date.day == 1
    assert sum(isinstance(e, BusinessDateAdvanced) for e in decision.events) == 31
    assert decision.result.months_ended == ["2026-01", "2026-02"]


def test_the_clock_never_moves_backwards() -> None:
    with pytest.raises(Conflict, match="cannot move backwards"):
        advance(today=TODAY, to=date(2026, 1, 4))(ClockState(date=TODAY))


def test_advancing_to_the_current_date_publishes_nothing() -> None:
    decision = advance(today=TODAY, to=TODAY)(ClockState(date=TODAY))
    assert decision.events == [] and decision.state == ClockState(date=TODAY)


def test_one_call_advances_at_most_ten_years_or_so() -> None:
    with pytest.raises(Invalid, match="at most 3660 days"):
        advance(today=TODAY, to=date(2040, 1, 1))(ClockState(date=TODAY))


def test_a_start_date_is_refused_once_the_clock_runs() -> None:
    with pytest.raises(Conflict, match="already running"):
        advance(today=TODAY, start=date(2026, 2, 1), days=1)(ClockState(date=TODAY))


def test_the_clock_stops_a_year_before_the_end_of_the_calendar_with_a_clear_refusal() -> None:
    from services.identity.clock import LAST_DATE

    for kwargs in ({"start": date(9999, 12, 25), "days": 10}, {"start": date(9998, 12, 30), "days": 2},
                   {"start": date(9998, 12, 1), "to": date(9999, 1, 1)}):
        with pytest.raises(Invalid, match="stops at 9998-12-31"):
            advance(today=TODAY, **kwargs)(None)  # type: ignore[arg-type]
    last = advance(today=TODAY, start=date(9998, 12, 30), days=1)(None)
    assert last.state is not None and last.state.date == LAST_DATE


def test_the_real_date_clock_catches_up_from_where_it_stands() -> None:
    decision = catch_up(today=TODAY)(ClockState(date=date(2025, 12, 30)))
    assert decision.state == ClockState(date=TODAY)
    days = [e.date for e in decision.events if isinstance(e, BusinessDateAdvanced)]
    assert days == [date(2025, 12, 31), date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3),
                    date(2026, 1, 4), TODAY]
    assert [e.month for e in decision.events if isinstance(e, MonthEnded)] == ["2025-12"]


def test_the_real_date_clock_starts_on_today_and_leaves_a_clock_that_is_ahead_alone() -> None:
    first = catch_up(today=TODAY)(None)
    assert (first.state, first.events) == (ClockState(date=TODAY), [])
    ahead = ClockState(date=date(2026, 3, 1))
    assert (catch_up(today=TODAY)(ahead).state, catch_up(today=TODAY)(ahead).events) == (ahead, [])


def test_a_service_is_behind_until_its_clock_group_has_committed_up_to_the_end_of_the_clock() -> None:
    committed: dict[str, int | None] = {"cards": 12, "bank": 11, "notifications": None}
    assert services_behind(committed, 12) == ["bank", "notifications"]
    assert services_behind({"cards": 12, "bank": 13, "notifications": 12}, 12) == []
    assert services_behind({"cards": None}, 0) == []  # nothing on the clock topic yet


def _stubborn(hold: float, calls: list[float]) -> Callable[[], Awaitable[bool]]:
    """A ``published`` that never sees the advance on the topic and, like a library that
    turns a cancellation into a retry, ignores cancellations for ``hold`` seconds (a look
    polling on 3 s after it was called first is told to stop by an error)."""
    async def published() -> bool:
        calls.append(time.monotonic())
        if calls[-1] - calls[0] > 3.0:
            raise RuntimeError("the test is over")
        until = time.monotonic() + hold
        while (left := until - time.monotonic()) > 0:
            try:
                await asyncio.sleep(left)
            except asyncio.CancelledError:
                continue
        return False
    return published


@pytest.mark.parametrize("hold", [0.0, 0.05, 1.0])
async def test_the_wait_for_the_followers_answers_at_its_bound_whatever_the_look_does(hold: float) -> None:
    """Nothing is published (the broker is down): the wait names every service behind at its
    bound, even when the look swallows the timeout's cancellation (a clock advance once got no
    answer in 60 s that way), and the look then stops polling by itself."""
    followers = ClockFollowers(IdentitySettings(environment="test", namespace="followers"))
    calls: list[float] = []
    started = time.monotonic()
    waiting = asyncio.ensure_future(followers.wait(_stubborn(hold, calls), 0.3))
    done, _ = await asyncio.wait({waiting}, timeout=2.0)
    took = time.monotonic() - started
    assert done, "no answer in 2 s"
    behind = waiting.result()
    assert behind == sorted(followers.groups) == ["bank", "cards", "notifications"]
    assert 0.3 <= took < 0.6, took
    await asyncio.sleep(hold + 0.2)
    seen = len(calls)
    await asyncio.sleep(0.2)
    assert len(calls) == seen  # the look has ended: it does not poll on after the answer
