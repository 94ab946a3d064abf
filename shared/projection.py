"""Applying an event at most once to a projection document.

A projection document keeps, under ``seq``, the last applied sequence of every
aggregate whose events it has consumed. A repeat or an older event changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from .events import CloudEvent


def seq_key(event: CloudEvent) -> str:
    """Field name under ``seq`` for the event's aggregate (no dots allowed in keys)."""
    return f"{event.service}:{event.partitionkey}".replace(".", "_").replace("$", "_")


def already_applied(doc: dict[str, Any], event: CloudEvent) -> bool:
    return int((doc.get("seq") or {}).get(seq_key(event), 0)) >= event.sequence


def once_filter(doc_id: Any, event: CloudEvent) -> dict[str, Any]:
    field = f"seq.{seq_key(event)}"
    return {"_id": doc_id, "$or": [{field: {"$lt": event.sequence}}, {field: {"$exists": False}}]}


def once_update(event: CloudEvent, update: dict[str, Any]) -> dict[str, Any]:
    merged = {k: dict(v) for k, v in update.items()}
    merged.setdefault("$set", {})[f"seq.{seq_key(event)}"] = event.sequence
    return merged


async def apply_once(
    collection: AsyncCollection[dict[str, Any]],
    doc_id: Any,
    event: CloudEvent,
    update: dict[str, Any],
    *,
    upsert: bool = True,
) -> bool:
    """Apply ``update`` to the document unless this event (or a later one) was applied.

    Returns True when the update was applied. An upsert's duplicate key means the document
    exists and the filter did not match it, either because it has seen this sequence or
    because another event's upsert created it between the lookup and the insert (events of
    several aggregates write one document, e.g. a person's and their card's); the second try
    tells the two apart, since the document then exists.
    """
    for attempt in range(2):
        try:
            res = await collection.update_one(once_filter(doc_id, event), once_update(event, update), upsert=upsert)
        except DuplicateKeyError:
            if attempt:
                return False  # the document exists and has already seen this sequence
            continue
        return bool(res.modified_count or res.upserted_id is not None)
    return False


Apply = Callable[[AsyncDatabase[dict[str, Any]], CloudEvent], Awaitable[None]]


@dataclass(frozen=True)
class Projection:
    """Collections of a service's database derived from other services' events alone."""

    name: str
    sources: tuple[str, ...]
    """Services whose topics feed it."""
    collections: tuple[str, ...]
    apply: Apply
    """Applies one event to the collections of the given database (at most once per event)."""
