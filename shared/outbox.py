"""The embedded outbox: a command's new state and its events in one atomic write.

Each aggregate is one MongoDB document: its state fields, ``version`` (the sequence
of its last event), ``outbox`` (envelopes not yet acknowledged by Kafka), ``pending``
(indexed flag for the relay), ``outbox_done`` (highest sequence published) and
``rev`` (bumped by every write: the optimistic-concurrency guard), ``seq`` (the last applied sequence of each foreign aggregate whose events this one
consumed). A single-document write is atomic on MongoDB and FerretDB alike, so the
state change and its events are never separated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo import UpdateOne
from pymongo.errors import DuplicateKeyError

from .events import CloudEvent, EventData, new_event
from .projection import already_applied, seq_key

S = TypeVar("S", bound=BaseModel)
META_FIELDS = ("_id", "version", "rev", "outbox", "pending", "outbox_done", "seq")


class ConcurrencyConflict(Exception):
    """Another writer changed the aggregate between our read and our write."""


@dataclass
class Decision(Generic[S]):
    """What a pure domain function decided: the new state, the events, a result."""

    state: S | None
    events: list[EventData] = field(default_factory=list)
    result: Any = None


@dataclass
class Outcome(Generic[S]):
    state: S | None
    events: list[CloudEvent]
    result: Any
    duplicate: bool = False


class AggregateStore(Generic[S]):
    """Loads and saves one kind of aggregate with its embedded outbox."""

    def __init__(
        self,
        collection: AsyncCollection[dict[str, Any]],
        *,
        service: str,
        state_type: type[S],
        on_saved: Callable[[str, str], None] | None = None,
    ) -> None:
        self.collection = collection
        self.service = service
        self.source = f"/medcard/{service}"
        self.state_type = state_type
        self.on_saved = on_saved

    async def create_indexes(self) -> None:
        await self.collection.create_index("pending")

    def state_of(self, doc: dict[str, Any] | None) -> S | None:
        """The aggregate's state in a document read from the collection."""
        return self._state(doc)

    def _state(self, doc: dict[str, Any] | None) -> S | None:
        if doc is None:
            return None
        return self.state_type.model_validate({k: v for k, v in doc.items() if k not in META_FIELDS})

    async def get(self, aggregate_id: str) -> S | None:
        return self._state(await self.collection.find_one({"_id": aggregate_id}))

    async def get_doc(self, aggregate_id: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": aggregate_id})

    async def execute(
        self,
        aggregate_id: str,
        decide: Callable[[S | None], Decision[S]],
        *,
        correlation_id: str,
        cause: CloudEvent | None = None,
        retries: int = 50,
        loaded: dict[str, Any] | None = None,
    ) -> Outcome[S]:
        """Load, decide (pure), save state + events atomically; retry on a concurrent write.

        With ``cause`` (an event being applied), a repeat or older event changes nothing.
        ``loaded`` is the aggregate's document if the caller has just read it.
        Domain errors raised by ``decide`` propagate and nothing is written.
        """
        for attempt in range(retries):
            # ``loaded``: the document as the caller just read it (saves a read; if it is
            # stale the guarded write fails and the next attempt reads afresh).
            if attempt == 0 and loaded is not None:
                doc = loaded
            else:
                doc = await self.collection.find_one({"_id": aggregate_id})
            if cause is not None and doc is not None and already_applied(doc, cause):
                return Outcome(self._state(doc), [], None, duplicate=True)
            decision = decide(self._state(doc))
            try:
                events = await self._save(aggregate_id, doc, decision, correlation_id, cause)
            except ConcurrencyConflict:
                await asyncio.sleep(0)
                continue
            if events and self.on_saved:
                self.on_saved(self.collection.name, aggregate_id)
            return Outcome(decision.state, events, decision.result)
        raise ConcurrencyConflict(f"{self.service} aggregate {aggregate_id} kept changing; gave up after {retries} tries")

    async def execute_many(
        self,
        docs: list[dict[str, Any]],
        decide: Callable[[S | None], Decision[S]],
        *,
        correlation_id: str,
        cause: CloudEvent,
    ) -> int:
        """Apply one event's decision to many existing aggregates with one ``bulk_write``.

        ``docs`` are the aggregates as just read. Each write is guarded by its ``rev`` like
        ``execute``'s; if any guard failed (another writer got there first), the whole
        group is applied again one by one with ``execute``, where the mark of ``cause`` on
        each aggregate that the bulk write did change makes it a no-op. Returns how many
        aggregates were written."""
        writes: list[UpdateOne] = []
        ids: list[str] = []
        for doc in docs:
            if already_applied(doc, cause):
                continue
            prepared = self._prepare(doc["_id"], doc, decide(self._state(doc)), correlation_id, cause)
            if prepared is not None:
                writes.append(UpdateOne(prepared[0], prepared[1]))
                ids.append(doc["_id"])
        if not writes:
            return 0
        result = await self.collection.bulk_write(writes, ordered=False)
        if result.matched_count < len(writes):
            for aggregate_id in ids:
                await self.execute(aggregate_id, decide, correlation_id=correlation_id, cause=cause)
        if self.on_saved:
            for aggregate_id in ids:
                self.on_saved(self.collection.name, aggregate_id)
        return len(ids)

    def _prepare(
        self,
        aggregate_id: str,
        doc: dict[str, Any],
        decision: Decision[S],
        correlation_id: str,
        cause: CloudEvent | None,
    ) -> tuple[dict[str, Any], dict[str, Any], list[CloudEvent]] | None:
        """The guarded update (filter, update, events) that saves ``decision`` over an
        existing ``doc``; None when it changes nothing."""
        version, rev = doc["version"], doc.get("rev", 0)
        envelopes = self._envelopes(aggregate_id, version, decision, correlation_id, cause)
        stored = [e.model_dump(mode="json") for e in envelopes]
        state = decision.state.model_dump(mode="json") if decision.state is not None else {}
        marks = {f"seq.{seq_key(cause)}": cause.sequence} if cause else {}
        if not (state or marks or stored):
            return None
        update: dict[str, Any] = {"$set": {**state, **marks, "version": version + len(envelopes), "rev": rev + 1}}
        if stored:
            update["$set"]["pending"] = True
            update["$push"] = {"outbox": {"$each": stored}}
        return {"_id": aggregate_id, "rev": rev}, update, envelopes

    def _envelopes(self, aggregate_id: str, version: int, decision: Decision[S], correlation_id: str,
                   cause: CloudEvent | None) -> list[CloudEvent]:
        return [
            new_event(
                data,
                source=self.source,
                partitionkey=aggregate_id,
                sequence=version + i,
                correlationid=correlation_id,
                causationid=cause.id if cause else None,
                subject=getattr(data, "card_number", None) or aggregate_id,
            )
            for i, data in enumerate(decision.events, start=1)
        ]

    async def _save(
        self,
        aggregate_id: str,
        doc: dict[str, Any] | None,
        decision: Decision[S],
        correlation_id: str,
        cause: CloudEvent | None,
    ) -> list[CloudEvent]:
        if doc is not None:
            prepared = self._prepare(aggregate_id, doc, decision, correlation_id, cause)
            if prepared is None:
                return []
            query, update, envelopes = prepared
            res = await self.collection.update_one(query, update)
            if res.matched_count == 0:
                raise ConcurrencyConflict(aggregate_id)
            return envelopes
        if decision.state is None:
            return []
        envelopes = self._envelopes(aggregate_id, 0, decision, correlation_id, cause)
        stored = [e.model_dump(mode="json") for e in envelopes]
        new_doc = {"_id": aggregate_id, **decision.state.model_dump(mode="json"), "version": len(envelopes),
                   "rev": 1, "outbox": stored, "pending": bool(stored), "outbox_done": 0,
                   "seq": {seq_key(cause): cause.sequence} if cause else {}}
        try:
            await self.collection.insert_one(new_doc)
        except DuplicateKeyError:
            raise ConcurrencyConflict(aggregate_id) from None
        return envelopes
