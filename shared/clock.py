"""The business date as each service sees it: the latest ``BusinessDateAdvanced``
from the clock topic, or today's date in China when no simulated clock has ticked."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from .events import BusinessDateAdvanced, CloudEvent
from .projection import apply_once

CHINA = timedelta(hours=8)


def real_today() -> date:
    return (datetime.now(UTC) + CHINA).date()


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
        data = event.data
        if not isinstance(data, BusinessDateAdvanced):
            return False
        moved = await apply_once(self.coll, "clock", event, {"$set": {"date": data.date.isoformat()}})
        if moved:
            self._date = data.date
        return moved
