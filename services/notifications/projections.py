"""The notifications service's projections of other services' events (rebuildable from the
topics: ``medcard projections rebuild notifications``): who can be reached how and which card
is whose (``recipients``, from identity's and cards' events) and what each merchant is called
(``merchants``, from the bank's), the business date (``clock``, from the clock topic) and
the tokens refused after a lock or closure of an online account (``token_revocations``,
from identity's)."""

from __future__ import annotations

from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from shared.card_state import CardState
from shared.clock import CLOCK_PROJECTION
from shared.events import (
    CardActivated,
    CardCancelled,
    CardIssued,
    CardLost,
    CloudEvent,
    EventData,
    MerchantRegistered,
    PersonRegistered,
)
from shared.projection import apply_once, once_filter, once_update
from shared.projection import Projection
from shared.revocations import REVOCATION_PROJECTION


def card_state_after(data: EventData) -> CardState | None:
    """The state (shared vocabulary) a card of the cards service's events is in after ``data``."""
    match data:
        case CardIssued():
            return "pending_activation"
        case CardActivated():
            return "active"
        case CardLost():
            return "lost"
        case CardCancelled():
            return "cancelled"
    return None


def _change(event: CloudEvent) -> tuple[str, str, dict[str, Any]] | None:
    """(collection, document id, update) that ``event`` makes to ``recipients`` or
    ``merchants``; None if it changes neither."""
    data = event.data
    match data:
        case PersonRegistered():
            return "recipients", data.person_id, {"$set": {"person_id": data.person_id, "name": data.name,
                                                           "mobile": data.mobile, "language": data.language}}
        case CardIssued() | CardActivated() | CardLost() | CardCancelled():
            return "recipients", data.person_id, {"$set": {"person_id": data.person_id,
                                                           f"cards.{data.card_number}": card_state_after(data)}}
        case MerchantRegistered():
            return "merchants", data.merchant_id, {"$set": {"name": data.name}}
    return None


async def project(db: AsyncDatabase[dict[str, Any]], event: CloudEvent) -> None:
    """Apply one event to ``recipients`` or ``merchants``, at most once."""
    if (change := _change(event)) is not None:
        name, doc_id, update = change
        await apply_once(db[name], doc_id, event, update)


async def project_many(db: AsyncDatabase[dict[str, Any]], events: list[CloudEvent]) -> None:
    """``project`` for a consumer batch: one ordered ``bulk_write`` per collection of the
    same guarded upserts, in log order. Ordered, it stops at the first write that fails (a
    duplicate key: that event was applied already, or another writer's upsert created the
    document meanwhile); that event and those after it are applied one by one, as
    ``project`` does, which tells the two apart."""
    writes: dict[str, list[tuple[CloudEvent, UpdateOne]]] = {}
    for event in events:
        if (change := _change(event)) is not None:
            name, doc_id, update = change
            writes.setdefault(name, []).append(
                (event, UpdateOne(once_filter(doc_id, event), once_update(event, update), upsert=True)))
    for name, pairs in writes.items():
        try:
            await db[name].bulk_write([op for _, op in pairs], ordered=True)
        except BulkWriteError as err:
            failed = min((e["index"] for e in err.details.get("writeErrors", ())), default=0)
            for event, _ in pairs[failed:]:
                await project(db, event)


PROJECTIONS = [
    CLOCK_PROJECTION,
    Projection("recipients", sources=("identity", "cards", "bank"), collections=("recipients", "merchants"),
               apply=project),
    REVOCATION_PROJECTION,
]
