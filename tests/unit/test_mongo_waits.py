"""pymongo's condition waits keep its lock sound when their caller is cancelled twice: the
task waiting for a server (or a pooled connection) is cancelled while its wait takes the lock
back, and again just as the lock is let go (shared/mongo_waits.py)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

import pymongo.asynchronous.pool
import pymongo.asynchronous.topology
import pymongo.lock
from pymongo.lock import _async_create_condition, _async_create_lock

import shared.database  # noqa: F401  (it makes the waits safe when imported)
from shared.mongo_waits import PYMONGO_WAIT, condition_wait

Wait = Callable[[asyncio.Condition, float | None], Awaitable[bool]]


async def cancelled_twice_in_a_wait(wait: Wait) -> tuple[BaseException | None, bool]:
    """What the waiting task ended with, and whether the lock is still usable afterwards."""
    lock = _async_create_lock()
    condition = _async_create_condition(lock)

    async def waiting() -> None:  # as in pymongo's server selection
        async with lock:
            await wait(condition, 10)

    waiter = asyncio.create_task(waiting())
    await asyncio.sleep(0.01)  # waiting for a notification, the lock let go
    release = asyncio.Event()

    async def holding() -> None:  # another selection holds the lock meanwhile
        async with lock:
            await release.wait()
            waiter.cancel()  # the second cancellation, as the lock is let go

    holder = asyncio.create_task(holding())
    await asyncio.sleep(0.01)
    waiter.cancel()  # the first: the wait must take the lock back, behind the holder
    await asyncio.sleep(0.01)
    release.set()
    ended, _ = await asyncio.gather(waiter, holder, return_exceptions=True)
    try:
        async with asyncio.timeout(1):
            async with lock:
                usable = True
    except TimeoutError:
        usable = False
    return ended, usable  # type: ignore[return-value]


def test_pymongo_waits_with_the_safe_wait_wherever_it_waits_on_python_3_11() -> None:
    expected = PYMONGO_WAIT if sys.version_info >= (3, 12) else condition_wait  # 3.12's wait_for is safe
    assert pymongo.lock._async_cond_wait is expected
    assert pymongo.asynchronous.topology._async_cond_wait is expected  # server selection
    assert pymongo.asynchronous.pool._async_cond_wait is expected  # a connection from the pool


async def test_a_wait_cancelled_twice_ends_cancelled_and_leaves_the_lock_usable() -> None:
    ended, usable = await cancelled_twice_in_a_wait(condition_wait)
    assert isinstance(ended, asyncio.CancelledError) and usable


async def test_pymongo_s_own_wait_loses_the_lock_when_cancelled_twice_on_python_3_11() -> None:
    """Why the wait is replaced: on Python 3.11 the lock is released by a task that no
    longer holds it, then held for ever (every later operation of the client would hang);
    Python 3.12's wait_for keeps it sound."""
    ended, usable = await cancelled_twice_in_a_wait(PYMONGO_WAIT)
    if sys.version_info >= (3, 12):
        assert isinstance(ended, asyncio.CancelledError) and usable
    else:
        assert isinstance(ended, RuntimeError) and "Lock is not acquired" in str(ended)
        assert not usable
