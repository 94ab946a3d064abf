"""When the SMS dispatcher runs a pass: a wake for messages that are not urgent gathers those
that follow for ``sms_gather_seconds`` into one pass, an urgent one starts it at once, and a
full pass is followed by the next at once. A wake that names its messages gets a pass of
those; every due message is looked for at start, every ``sms_scan_seconds``, after a full look
and when woken without ids. The passes themselves are counted, not run (their
work against the database: tests/integration/test_notifications_sms.py)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from services.notifications.config import NotificationSettings
from services.notifications.delivery import SmsDispatcher
from shared.bounded import cancel_and_wait
from tests.helpers import eventually
from tests.unit.memory_collection import MemoryCollection


class CountedPasses(SmsDispatcher):
    """A dispatcher whose passes only count: each takes the next of ``tried`` (then 0)."""

    def __init__(self, gather_seconds: float, pass_size: int = 50, tried: tuple[int | Exception, ...] = (),
                 scan_seconds: float = 300.0, poll_seconds: float = 60.0) -> None:
        super().__init__(NotificationSettings(worker_poll_seconds=poll_seconds, sms_gather_seconds=gather_seconds,
                                              sms_scan_seconds=scan_seconds),
                         messages=SimpleNamespace(collection=MemoryCollection("messages")),  # type: ignore[arg-type]
                         recipients=MemoryCollection("recipients"),
                         channel=SimpleNamespace(pass_size=pass_size))  # type: ignore[arg-type]
        self.passes: list[float] = []
        self.took: list[list[str] | None] = []  # each pass's ids (None: every due message)
        self.tried = list(tried)

    async def dispatch_due(self, ids: list[str] | None = None) -> int:
        self.passes.append(time.monotonic())
        self.took.append(ids)
        tried = self.tried.pop(0) if self.tried else 0
        if isinstance(tried, Exception):
            raise tried
        return tried

    async def passes_reach(self, count: int, seconds: float = 5.0) -> None:
        async def reached() -> bool:
            return len(self.passes) >= count
        await eventually(reached, timeout=seconds, interval=0.01)


async def test_messages_that_are_not_urgent_go_out_together_after_the_gathering() -> None:
    dispatcher = CountedPasses(gather_seconds=0.5)
    task = asyncio.create_task(dispatcher.run())
    try:
        await dispatcher.passes_reach(1)  # nothing due at start: asleep until woken
        woken = time.monotonic()
        for _ in range(3):
            dispatcher.wake(urgent=False)
            await asyncio.sleep(0.05)
        assert len(dispatcher.passes) == 1, "a pass ran before the gathering ended"
        await dispatcher.passes_reach(2)
        await asyncio.sleep(0.3)
        assert len(dispatcher.passes) == 2, "the three messages did not go in one pass"
        assert dispatcher.passes[1] - woken >= 0.45
    finally:
        assert await cancel_and_wait(task, 2)


async def test_an_urgent_message_cuts_the_gathering_short() -> None:
    dispatcher = CountedPasses(gather_seconds=10.0)
    task = asyncio.create_task(dispatcher.run())
    try:
        await dispatcher.passes_reach(1)
        dispatcher.wake(urgent=False)
        await asyncio.sleep(0.1)
        assert len(dispatcher.passes) == 1
        dispatcher.wake(urgent=True)  # a fraud alert: not 10 s later
        await dispatcher.passes_reach(2, seconds=2.0)
        dispatcher.wake()  # a wake that says nothing is urgent (an operator's resend, contact details)
        await dispatcher.passes_reach(3, seconds=2.0)
    finally:
        assert await cancel_and_wait(task, 2)


async def test_a_full_pass_is_followed_by_the_next_at_once() -> None:
    dispatcher = CountedPasses(gather_seconds=10.0, pass_size=2, tried=(2, 2, 1))
    task = asyncio.create_task(dispatcher.run())
    try:
        await dispatcher.passes_reach(3, seconds=2.0)  # not a poll (60 s) or a gathering apart
        await asyncio.sleep(0.1)
        assert len(dispatcher.passes) == 3, "a pass that was not full was followed by another unwoken"
    finally:
        assert await cancel_and_wait(task, 2)


async def test_a_wake_with_ids_gets_a_pass_of_those_and_every_due_message_is_looked_for_at_intervals() -> None:
    dispatcher = CountedPasses(gather_seconds=0.0, scan_seconds=0.6, poll_seconds=0.05)
    task = asyncio.create_task(dispatcher.run())
    try:
        await dispatcher.passes_reach(1)
        assert dispatcher.took == [None], "the first pass looks for every due message"
        dispatcher.wake(ids=["M1", "M2"])
        await dispatcher.passes_reach(2)
        assert dispatcher.took[1] == ["M1", "M2"]
        await asyncio.sleep(0.2)  # polls with nothing told of: no pass
        assert len(dispatcher.passes) == 2
        await dispatcher.passes_reach(3, seconds=2.0)  # the scan interval: a look without being woken
        assert dispatcher.took[2] is None and dispatcher.passes[2] - dispatcher.passes[0] >= 0.55
        dispatcher.wake(ids=["M3"])
        await dispatcher.passes_reach(4)
        dispatcher.wake()  # no ids (an operator's resend): every due message
        await dispatcher.passes_reach(5)
        assert dispatcher.took[3:] == [["M3"], None]
    finally:
        assert await cancel_and_wait(task, 2)


async def test_more_messages_told_of_than_a_pass_takes_go_in_passes_one_after_the_other() -> None:
    dispatcher = CountedPasses(gather_seconds=0.0, pass_size=2)
    task = asyncio.create_task(dispatcher.run())
    try:
        await dispatcher.passes_reach(1)
        dispatcher.wake(ids=["M1", "M2", "M3", "M4", "M5", "M2"])
        await dispatcher.passes_reach(4, seconds=2.0)  # not a poll (60 s) apart
        assert dispatcher.took[1:] == [["M1", "M2"], ["M3", "M4"], ["M5"]], "each told once, oldest first"
    finally:
        assert await cancel_and_wait(task, 2)


async def test_messages_born_leased_to_this_process_stay_told_of_through_a_full_look() -> None:
    """A full look does not find them (their lease is ahead, they are not due yet): they still
    get a pass by id, not one after their lease (60 s); the others told of are left to the look."""
    from datetime import UTC, datetime

    dispatcher = CountedPasses(gather_seconds=0.0)
    dispatcher.wake(ids=["M1"], held_until=SmsDispatcher.hold(datetime.now(UTC)))
    dispatcher.wake(ids=["M2"])
    task = asyncio.create_task(dispatcher.run())
    try:
        await dispatcher.passes_reach(2, seconds=2.0)
        await asyncio.sleep(0.1)
        assert dispatcher.took == [None, ["M1"]], "the first pass is a full look; M1, held, is taken by id after it"
    finally:
        assert await cancel_and_wait(task, 2)


async def test_a_full_look_is_followed_by_another_look_even_with_messages_told_of() -> None:
    dispatcher = CountedPasses(gather_seconds=0.0, pass_size=2, tried=(2, 1))
    dispatcher.wake(ids=["M1"])
    task = asyncio.create_task(dispatcher.run())
    try:
        await dispatcher.passes_reach(2, seconds=2.0)
        await asyncio.sleep(0.1)
        assert dispatcher.took == [None, None], "the second look was not a full one (or M1 got a pass of its own)"
    finally:
        assert await cancel_and_wait(task, 2)


async def test_the_messages_of_a_failed_pass_are_looked_for_again() -> None:
    dispatcher = CountedPasses(gather_seconds=0.0, tried=(0, ConnectionError("database down")))
    task = asyncio.create_task(dispatcher.run())
    try:
        await dispatcher.passes_reach(1)
        dispatcher.wake(ids=["M1"])  # its pass fails: M1 is no longer told of
        await dispatcher.passes_reach(2)
        dispatcher.wake(ids=["M2"])
        await dispatcher.passes_reach(3)
        assert dispatcher.took == [None, ["M1"], None], "after a failed pass, not a look for every due message"
    finally:
        assert await cancel_and_wait(task, 2)
