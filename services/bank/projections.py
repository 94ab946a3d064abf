"""The bank's projections of other services' events (rebuildable from the topics:
``medcard projections rebuild bank``): the card and receipt indexes (number -> person),
from the cards topic, the business date, from the clock topic, and the tokens refused after
a lock or closure of an online account, from the identity topic."""

from __future__ import annotations

from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from shared.clock import CLOCK_PROJECTION
from shared.events import CardIssued, CardLost, CloudEvent, ReplacementRequested
from shared.outbox import BATCH_GROUP
from shared.projection import Projection
from shared.revocations import REVOCATION_PROJECTION


def index_entry(event: CloudEvent) -> tuple[str, str, str] | None:
    """(index collection, number, person) that the event records, if any."""
    data = event.data
    if isinstance(data, CardIssued | CardLost):
        return "card_index", data.card_number, data.person_id
    if isinstance(data, ReplacementRequested):
        return "receipt_index", data.receipt_number, data.person_id
    return None


async def index(db: AsyncDatabase[dict[str, Any]], event: CloudEvent) -> None:
    """Card number -> person (CardIssued, CardLost) and receipt number -> person
    (ReplacementRequested). Idempotent: a number belongs to one person for ever."""
    if (entry := index_entry(event)) is not None:
        name, number, person_id = entry
        await db[name].update_one({"_id": number}, {"$set": {"person_id": person_id}}, upsert=True)


async def index_many(db: AsyncDatabase[dict[str, Any]], events: list[CloudEvent]) -> None:
    """``index`` for a batch of events: one bulk write of upserts per index and group (if
    another writer's upsert of the same number races one of them, ``index`` one by one)."""
    writes: dict[str, list[UpdateOne]] = {}
    for entry in filter(None, map(index_entry, events)):
        name, number, person_id = entry
        writes.setdefault(name, []).append(UpdateOne({"_id": number}, {"$set": {"person_id": person_id}},
                                                     upsert=True))
    for name, ops in writes.items():
        for start in range(0, len(ops), BATCH_GROUP):
            try:
                await db[name].bulk_write(ops[start:start + BATCH_GROUP], ordered=False)
            except BulkWriteError:
                for event in events:
                    await index(db, event)
                return


PROJECTIONS = [
    Projection("indexes", sources=("cards",), collections=("card_index", "receipt_index"), apply=index),
    CLOCK_PROJECTION,
    REVOCATION_PROJECTION,
]
