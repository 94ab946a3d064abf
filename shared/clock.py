"""The business date as each service sees it: the latest ``BusinessDateAdvanced``
from the clock topic, or today's date in China when no simulated clock has ticked.

Every service that follows the clock applies it in one consumer group (``CLOCK_GROUPS``);
identity's clock advance answers once each of those groups has committed past the days it
published, and ``DATE_REUSE_SECONDS`` after that, so a command sent after the answer is
dated with the new day by every replica, whichever of them applied it."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from datetime import date
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from .calendar import real_today
from .events import BusinessDateAdvanced, CloudEvent
from .projection import apply_once
from .projection import Projection

CLOCK_GROUPS: dict[str, str] = {"cards": "cards", "bank": "bank.clock", "notifications": "notifications"}
"""Service -> its consumer group (``Settings.group_id`` of this name) that applies the
business date from the clock topic. The bank's is a group of its own, which also runs the
month end; cards and notifications follow the clock in their one group."""


DATE_REUSE_SECONDS = 0.1
"""How long a replica dates its commands with the business date it read, from the moment it
sent the read, before it reads it again (a POS swipe read it every time: a third of the
bank's database commands). Identity's clock advance answers this long after the last
follower group committed the new date, so a read that could still be reused then was sent
after the date was stored: a command sent after the answer is dated with the new day."""


class BusinessClock:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], *, reuse_seconds: float | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.coll = db["clock"]
        self.reuse_seconds = DATE_REUSE_SECONDS if reuse_seconds is None else reuse_seconds
        self._monotonic = monotonic
        self._date: date | None = None
        self._as_of = -math.inf
        """When the date held was known current: a read's sending, or this process applying it."""
        self._reading: tuple[float, asyncio.Future[None]] | None = None

    async def load(self) -> None:
        """Read the stored date (the latest any replica applied)."""
        await self._read(self._monotonic())

    async def _read(self, sent: float) -> None:
        doc = await self.coll.find_one({"_id": "clock"})
        if sent > self._as_of:  # a read sent earlier, answered later, knows no more
            self._as_of = sent
            if doc:
                self._date = date.fromisoformat(doc["date"])

    def today(self) -> date:
        """The business date as this process last applied or read it (no I/O)."""
        return self._date or real_today()

    async def current(self) -> date:
        """The business date to date a command with: as stored by whichever replica of the
        service applied the clock topic (this process may not own its partition), read again
        once ``reuse_seconds`` have passed since it was known; the commands arriving meanwhile
        share one read, if it was sent within ``reuse_seconds`` of their arrival."""
        now = self._monotonic()
        if now < self._as_of + self.reuse_seconds:
            return self.today()
        reading = self._reading
        if reading is None or now >= reading[0] + self.reuse_seconds:
            reading = self._reading = (now, asyncio.ensure_future(self._read(now)))
            reading[1].add_done_callback(lambda _: self._forget(reading))
        await asyncio.shield(reading[1])
        return self.today()

    def _forget(self, reading: tuple[float, asyncio.Future[None]]) -> None:
        """A finished read is not shared again: its date is held (or it failed, and the next
        command reads anew)."""
        if self._reading is reading:
            self._reading = None
        if not reading[1].cancelled():
            reading[1].exception()  # retrieved: whoever awaited it has it; no "never retrieved"

    @property
    def simulated(self) -> bool:
        return self._date is not None

    async def apply(self, event: CloudEvent) -> bool:
        """Record a BusinessDateAdvanced event; returns True if the date moved."""
        moved = await record_date(self.coll.database, event)
        if moved:
            self._date = event.data.date  # type: ignore[attr-defined]
            self._as_of = self._monotonic()
        return moved


async def record_date(db: AsyncDatabase[dict[str, Any]], event: CloudEvent) -> bool:
    """The clock projection: the date of the latest BusinessDateAdvanced, in ``clock``."""
    data = event.data
    if not isinstance(data, BusinessDateAdvanced):
        return False
    return await apply_once(db["clock"], "clock", event, {"$set": {"date": data.date.isoformat()}})


async def _project_date(db: AsyncDatabase[dict[str, Any]], event: CloudEvent) -> None:
    await record_date(db, event)


CLOCK_PROJECTION = Projection("clock", sources=("clock",), collections=("clock",), apply=_project_date)
"""The business date as a service sees it, from the clock topic alone."""
