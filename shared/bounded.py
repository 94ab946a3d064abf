"""Waits with a bound: every wait on a server or a task ends, and says what it waited for.

Built on ``asyncio.timeout``, not ``asyncio.wait_for``: on Python 3.11, ``wait_for`` returns
the awaited result when a cancellation arrives in the same turn of the loop as that result,
so a worker loop sleeping in it can swallow the cancellation of a stopping service and run
(and poll) for ever while the service's shutdown waits for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def within(aw: Awaitable[T], seconds: float, what: str,
                 error: Callable[[str], Exception] = TimeoutError) -> T:
    """``await aw``; once ``seconds`` have passed it is cancelled and ``error`` is raised
    with a message naming ``what`` was awaited (a TimeoutError of ``aw``'s own propagates)."""
    scope = asyncio.timeout(seconds)
    try:
        async with scope:
            return await aw
    except TimeoutError:
        if scope.expired():
            raise error(f"{what}: no answer in {round(seconds, 2):g} s") from None
        raise


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set, at most ``seconds``; whether it was set."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True


def stop_if_cancelled(err: BaseException | None = None) -> None:
    """Raise CancelledError when the running task is being cancelled: a library that turned the
    cancellation into an error of its own (pymongo, a connection error), or swallowed it and
    answered as if nothing had happened (pymongo 4.20 on Python 3.11 now and then: see
    services/identity/followers.py), must not keep a worker loop running after its service
    stopped. Worker loops call it with the error they catch, and after their work, before
    they sleep (an asyncio sleep or wait does not swallow; the database call before it may)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError() from err


async def cancel_and_wait(task: asyncio.Task[Any], seconds: float) -> bool:
    """Cancel ``task`` and wait until it has ended, at most ``seconds``. Returns False when
    it is still running then (it ignored the cancellation); its outcome is consumed."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        return False
    if not task.cancelled():
        task.exception()  # retrieved: an error of a task being stopped is not news
    return True
