"""The bank's projections of other services' events (rebuildable from the topics:
``medcard projections rebuild bank``): the card and receipt indexes (number -> person),
from the cards topic, and the business date, from the clock topic."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from shared.clock import CLOCK_PROJECTION
from shared.events import CardIssued, CardLost, CloudEvent, ReplacementRequested
from shared.rebuild import Projection


async def index(db: AsyncDatabase[dict[str, Any]], event: CloudEvent) -> None:
    """Card number -> person (CardIssued, CardLost) and receipt number -> person
    (ReplacementRequested). Idempotent: a number belongs to one person for ever."""
    data = event.data
    if isinstance(data, CardIssued | CardLost):
        await db["card_index"].update_one({"_id": data.card_number}, {"$set": {"person_id": data.person_id}},
                                          upsert=True)
    elif isinstance(data, ReplacementRequested):
        await db["receipt_index"].update_one({"_id": data.receipt_number}, {"$set": {"person_id": data.person_id}},
                                             upsert=True)


PROJECTIONS = [
    Projection("indexes", sources=("cards",), collections=("card_index", "receipt_index"), apply=index),
    CLOCK_PROJECTION,
]
