"""The notifications service's projections of other services' events (rebuildable from the
topics: ``medcard projections rebuild notifications``): who can be reached how and which card
is whose (``recipients``, from identity's and cards' events) and what each merchant is called
(``merchants``, from the bank's), the business date (``clock``, from the clock topic) and
the tokens refused after a lock or closure of an online account (``token_revocations``,
from identity's)."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

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
from shared.projection import apply_once
from shared.rebuild import Projection
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


async def project(db: AsyncDatabase[dict[str, Any]], event: CloudEvent) -> None:
    """Apply one event to ``recipients`` or ``merchants``, at most once."""
    data = event.data
    match data:
        case PersonRegistered():
            update = {"$set": {"person_id": data.person_id, "name": data.name, "mobile": data.mobile,
                               "language": data.language}}
        case CardIssued() | CardActivated() | CardLost() | CardCancelled():
            update = {"$set": {"person_id": data.person_id, f"cards.{data.card_number}": card_state_after(data)}}
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
    REVOCATION_PROJECTION,
]
