"""The business date as each service sees it: the latest ``BusinessDateAdvanced``
from the clock topic, or today's date in China when no simulated clock has ticked.

Every service that follows the clock applies it in one consumer group (``CLOCK_GROUPS``);
identity's clock advance answers once each of those groups has committed past the days it
published, so a command sent after the answer is dated with the new day."""

from __future__ import annotations

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


class BusinessClock:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.coll = db["clock"]
        self._date: date | None = None

    async def load(self) -> None:
        doc = await self.coll.find_one({"_id": "clock"})
        if doc:
            self._date = date.fromisoformat(doc["date"])

    def today(self) -> date:
        """The business date as this process last applied or read it (no I/O)."""
        return self._date or real_today()

    async def current(self) -> date:
        """The business date to date a command with: as stored by whichever replica of the
        service applied the clock topic (this process may not own its partition)."""
        await self.load()
        return self.today()

    @property
    def simulated(self) -> bool:
        return self._date is not None

    async def apply(self, event: CloudEvent) -> bool:
        """Record a BusinessDateAdvanced event; returns True if the date moved."""
        moved = await record_date(self.coll.database, event)
        if moved:
            self._date = event.data.date  # type: ignore[attr-defined]
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
