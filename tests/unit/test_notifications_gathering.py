"""When the SMS dispatcher runs a pass: a wake for messages that are not urgent gathers those
that follow for ``sms_gather_seconds`` into one pass, an urgent one starts it at once, and a
full pass is followed by the next at once. The passes themselves are counted, not run (their
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

    def __init__(self, gather_seconds: float, pass_size: int = 50, tried: tuple[int, ...] = ()) -> None:
        super().__init__(NotificationSettings(worker_poll_seconds=60.0, sms_gather_seconds=gather_seconds),
                         messages=SimpleNamespace(collection=MemoryCollection("messages")),  # type: ignore[arg-type]
                         recipients=MemoryCollection("recipients"),
                         channel=SimpleNamespace(pass_size=pass_size))  # type: ignore[arg-type]
        self.passes: list[float] = []
        self.tried = list(tried)

    async def dispatch_due(self) -> int:
        self.passes.append(time.monotonic())
        return self.tried.pop(0) if self.tried else 0

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
