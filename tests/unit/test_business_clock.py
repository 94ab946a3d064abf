"""The business date a replica dates its commands with: read again once ``reuse_seconds``
have passed since it was known, one read shared by the commands arriving meanwhile, a read
answered late never undoing a newer one, and a failed read not reused."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import pytest

from shared.clock import BusinessClock

from .memory_collection import MemoryCollection

JAN_3, JAN_4 = date(2029, 1, 3), date(2029, 1, 4)


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def clock_on(coll: MemoryCollection, ticks: Ticks) -> BusinessClock:
    coll.docs["clock"] = {"_id": "clock", "date": JAN_3.isoformat()}
    return BusinessClock({"clock": coll}, reuse_seconds=0.1, monotonic=ticks)  # type: ignore[arg-type]


async def test_commands_within_the_reuse_time_share_one_read_and_a_later_one_reads_again() -> None:
    coll, ticks = MemoryCollection("clock"), Ticks()
    clock = clock_on(coll, ticks)
    assert await asyncio.gather(*(clock.current() for _ in range(5))) == [JAN_3] * 5
    assert len(coll.queries) == 1

    coll.docs["clock"]["date"] = JAN_4.isoformat()  # another replica applied the next day
    ticks.now += 0.09
    assert await clock.current() == JAN_3 and len(coll.queries) == 1
    ticks.now += 0.02  # 0.11 s since the read was sent
    assert await clock.current() == JAN_4 and len(coll.queries) == 2


async def test_a_read_sent_longer_ago_than_the_reuse_time_is_not_shared_nor_lets_its_late_answer_win() -> None:
    coll, ticks = MemoryCollection("clock"), Ticks()
    clock = clock_on(coll, ticks)
    release = coll.hold_next_read()
    first = asyncio.create_task(clock.current())
    await coll.held.wait()

    ticks.now += 0.15  # the day moved meanwhile; a command arriving now must not wait on the old read
    coll.docs["clock"]["date"] = JAN_4.isoformat()
    async with asyncio.timeout(5):  # not held behind the first read
        assert await clock.current() == JAN_4 and len(coll.queries) == 2

    coll.docs["clock"]["date"] = JAN_3.isoformat()  # what the first read saw, answered only now
    release.set()
    await first
    assert clock.today() == JAN_4
    assert await clock.current() == JAN_4 and len(coll.queries) == 2


class FailsOnce(MemoryCollection):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.failures = 1

    async def find_one(self, query: dict[str, Any], fields: dict[str, Any] | None = None) -> dict[str, Any] | None:
        found = await super().find_one(query, fields)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the database did not answer")
        return found


async def test_a_failed_read_fails_the_commands_sharing_it_and_the_next_command_reads_anew() -> None:
    coll, ticks = FailsOnce("clock"), Ticks()
    clock = clock_on(coll, ticks)
    answers = await asyncio.gather(clock.current(), clock.current(), return_exceptions=True)
    assert [type(a) for a in answers] == [ConnectionError, ConnectionError] and len(coll.queries) == 1
    assert await clock.current() == JAN_3 and len(coll.queries) == 2


async def test_a_command_that_gives_up_leaves_the_shared_read_to_the_others() -> None:
    coll, ticks = MemoryCollection("clock"), Ticks()
    clock = clock_on(coll, ticks)
    release = coll.hold_next_read()
    impatient, patient = asyncio.create_task(clock.current()), asyncio.create_task(clock.current())
    await coll.held.wait()
    impatient.cancel()
    release.set()
    assert await patient == JAN_3 and len(coll.queries) == 1
    with pytest.raises(asyncio.CancelledError):
        await impatient
