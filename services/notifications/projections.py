"""The notifications service's projections of other services' events (rebuildable from the
topics: ``medcard projections rebuild notifications``): who can be reached how and which card
is whose (``recipients``, from identity's and cards' events) and what each merchant is called
(``merchants``, from the bank's), and the business date (``clock``, from the clock topic)."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from shared.clock import CLOCK_PROJECTION
from shared.events import CardCancelled, CardIssued, CloudEvent, MerchantRegistered, PersonRegistered
from shared.projection import apply_once
from shared.rebuild import Projection


async def project(db: AsyncDatabase[dict[str, Any]], event: CloudEvent) -> None:
    """Apply one event to ``recipients`` or ``merchants``, at most once."""
    data = event.data
    match data:
        case PersonRegistered():
            update = {"$set": {"person_id": data.person_id, "name": data.name, "mobile": data.mobile,
                               "language": data.language}}
        case CardIssued():
            update = {"$set": {"person_id": data.person_id, f"cards.{data.card_number}": "active"}}
        case CardCancelled():
            update = {"$set": {"person_id": data.person_id, f"cards.{data.card_number}": "cancelled"}}
        case MerchantRegistered():
            await apply_once(db["merchants"], data.merchant_id, event, {"$set": {"name": data.name}})
            return
        case _:
            return
    await apply_once(db["recipients"], data.person_id, event, update)


PROJECTIONS = [
    CLOCK_PROJECTION,
    Projection("recipients", sources=("identity", "cards", "bank"), collections=("recipients", "merchants"),
               apply=project),
]
