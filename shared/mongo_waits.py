"""pymongo's waits on its own condition variables, made safe to cancel on Python 3.11.

pymongo (4.20) waits for a server to be selected, and for a pooled connection, with
``asyncio.wait_for(condition.wait(), timeout)``. On Python 3.11 ``wait_for`` runs the wait
in a task of its own (CPython issue 86296, fixed in 3.12 by rewriting ``wait_for`` on
``asyncio.timeout``): a caller cancelled a second time while that inner wait is still taking
the lock back leaves before it, releases a lock it does not hold ("RuntimeError: Lock is not
acquired") and the inner wait then takes the lock for ever. Every later operation of that
client then waits for the topology lock: a service hung after a database outage, when its
bounded reads, relay scans and readiness checks were cancelled while the server was away
(seen once in the fault suite, then reproduced: tests/unit/test_mongo_waits.py).

``make_condition_waits_safe`` puts in pymongo's place the same wait inside
``asyncio.timeout``, which runs it in the caller's own task: the lock is taken back before
the cancellation leaves the wait, however many times the caller is cancelled.
"""

from __future__ import annotations

import asyncio
import sys
from types import ModuleType

import pymongo.asynchronous.pool
import pymongo.asynchronous.topology
import pymongo.lock

PATCHED: tuple[ModuleType, ...] = (pymongo.lock, pymongo.asynchronous.pool, pymongo.asynchronous.topology)
"""pymongo's module defining the wait, and the two that imported it by name."""
PYMONGO_WAIT = pymongo.lock._async_cond_wait
"""pymongo's own wait (kept to show what it does: tests/unit/test_mongo_waits.py)."""


async def condition_wait(condition: asyncio.Condition, timeout: float | None) -> bool:
    """Wait until notified, at most ``timeout`` seconds; whether notified (pymongo's contract)."""
    try:
        async with asyncio.timeout(timeout):
            return await condition.wait()
    except TimeoutError:
        return False


def make_condition_waits_safe() -> bool:
    """Replace pymongo's condition wait on Python before 3.12; whether it was replaced."""
    if sys.version_info >= (3, 12):
        return False
    for module in PATCHED:
        module._async_cond_wait = condition_wait  # type: ignore[attr-defined]
    return True
