"""Waits with a bound (shared/bounded.py), and the notifications workers built on them: a
worker loop stops when cancelled even at the moment it is woken (asyncio.wait_for on Python
3.11 returned the wake-up and swallowed the cancellation: a stopping service waited for ever)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from services.notifications.config import NotificationSettings
from services.notifications.delivery import SmsDispatcher
from shared.bounded import cancel_and_wait, wait_event, within
from tests.unit.memory_collection import MemoryCollection


async def test_within_names_what_it_waited_for() -> None:
    with pytest.raises(TimeoutError, match=r"^the broker's answer: no answer in 0.01 s$"):
        await within(asyncio.sleep(5), 0.01, "the broker's answer")
    assert await within(asyncio.sleep(0, "done"), 1, "a nap") == "done"


async def test_within_lets_the_awaited_timeout_through_unchanged() -> None:
    async def times_out() -> None:
        raise TimeoutError("its own")
    with pytest.raises(TimeoutError, match=r"^its own$"):
        await within(times_out(), 5, "something")


async def test_wait_event_tells_whether_the_event_was_set() -> None:
    event = asyncio.Event()
    assert not await wait_event(event, 0.01)
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_event(event, 5)


async def test_cancel_and_wait_reports_a_task_that_ignores_its_cancellation() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    assert not await cancel_and_wait(task, 0.05)
    release.set()
    task.cancel()
    assert await cancel_and_wait(task, 1)


@pytest.mark.parametrize("turns", range(4))
async def test_a_dispatcher_woken_as_it_is_cancelled_stops(turns: int) -> None:
    messages = SimpleNamespace(collection=MemoryCollection("messages"))
    dispatcher = SmsDispatcher(NotificationSettings(worker_poll_seconds=60.0), messages=messages,  # type: ignore[arg-type]
                               recipients=MemoryCollection("recipients"),
                               channel=SimpleNamespace(pass_size=50))  # type: ignore[arg-type]
    task = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(0.01)  # found nothing due: asleep until woken
    dispatcher.wake()  # a message was just created...
    for _ in range(turns):  # ...and the service stops a few turns of the loop later
        await asyncio.sleep(0)
    assert await cancel_and_wait(task, 2), f"the dispatcher ran on after its cancellation ({turns} turns)"


async def test_a_worker_loop_stops_when_a_library_turns_its_cancellation_into_an_error() -> None:
    """pymongo can raise its own error when the operation it awaits is cancelled: a worker that
    catches errors to stay alive kept polling after its service stopped, on a closed client."""
    from shared.bounded import stop_if_cancelled

    async def operation() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise RuntimeError("client closed") from None  # the library's own error

    async def worker(guarded: bool) -> int:
        passes = 0
        while passes < 3:  # bounded here; a real worker loops for ever
            passes += 1
            try:
                await operation()
            except Exception as err:
                if guarded:
                    stop_if_cancelled(err)
        return passes

    unguarded = asyncio.create_task(worker(False))
    await asyncio.sleep(0.01)
    assert await cancel_and_wait(unguarded, 0.2) is False  # it swallowed the cancellation and went on
    for _ in range(2):
        unguarded.cancel()
        await asyncio.sleep(0.01)
    assert await unguarded == 3
    guarded = asyncio.create_task(worker(True))
    await asyncio.sleep(0.01)
    assert await cancel_and_wait(guarded, 1.0) is True and guarded.cancelled()


async def test_a_worker_whose_awaited_call_swallows_its_cancellation_still_stops() -> None:
    """pymongo 4.20 on Python 3.11 now and then answers an operation that was cancelled as if
    nothing had happened (services/identity/followers.py): the SMS dispatcher's loop, which
    then went to sleep until its next poll, asks at the top of each turn whether it is stopping."""
    messages = SimpleNamespace(collection=MemoryCollection("messages"))
    dispatcher = SmsDispatcher(NotificationSettings(worker_poll_seconds=60.0), messages=messages,  # type: ignore[arg-type]
                               recipients=MemoryCollection("recipients"),
                               channel=SimpleNamespace(pass_size=50))  # type: ignore[arg-type]
    swallowed = []

    async def dispatch_due(ids: list[str] | None) -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            swallowed.append(ids)  # answered as if the look had found nothing
        return 0

    dispatcher.dispatch_due = dispatch_due  # type: ignore[method-assign]
    task = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(0.01)  # inside its first pass
    assert await cancel_and_wait(task, 1.0), "the dispatcher slept on after a swallowed cancellation"
    assert swallowed == [None] and task.cancelled()
