"""The business date as each service sees it: the latest ``BusinessDateAdvanced``
from the clock topic, or today's date in China when no simulated clock has ticked."""

from __future__ import annotations

from datetime import date
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from .calendar import real_today
from .events import BusinessDateAdvanced, CloudEvent
from .projection import apply_once
from .rebuild import Projection

class BusinessClock:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.coll = db["clock"]
        self._date: date | None = None

    async def load(self) -> None:
        doc = await self.coll.find_one({"_id": "clock"})
        if doc:
            self._date = date.fromisoformat(doc["date"])

    def today(self) -> date:
        return self._date or real_today()

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
