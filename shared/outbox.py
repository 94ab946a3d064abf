"""The embedded outbox: a command's new state and its events in one atomic write.

Each aggregate is one MongoDB document: its state fields, ``version`` (the sequence
of its last event), ``outbox`` (envelopes not yet acknowledged by Kafka), ``pending``
(indexed flag for the relay), ``outbox_done`` (highest sequence published) and
``rev`` (bumped by every write: the optimistic-concurrency guard), ``seq`` (the last applied
sequence of each foreign aggregate whose events this one consumed). A single-document write is atomic on MongoDB and FerretDB alike, so the
state change and its events are never separated.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError, PyMongoError

from .database import DUPLICATE_KEY, flag_index, one_batch, write_conflict
from .domain import Decision
from .events import ENVELOPES, SPECVERSION, CloudEvent, EventData
from .projection import already_applied, seq_key

S = TypeVar("S", bound=BaseModel)
META_FIELDS = ("_id", "version", "rev", "outbox", "pending", "outbox_done", "seq")
BULK_GROUP = 100
"""Index entries written by one ``bulk_write`` (``services/bank/projections.index_many``)."""
BATCH_GROUP = 1000
"""Aggregates read by one ``$in`` query and written by one ``bulk_write`` when a consumer
batch or a month end is applied: the unit applied again one by one when a guard fails.
A fetched batch (at most 500 events) is one group."""
_MISSING = object()


def _uuid4s(count: int) -> list[str]:
    """``count`` random (version 4) UUIDs, as ``str(uuid.uuid4())`` gives them, from one
    read of the system's random source instead of one each."""
    raw = os.urandom(16 * count).hex()
    out = []
    for k in range(0, 32 * count, 32):
        h = raw[k:k + 32]
        out.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}")
    return out


_IDS: list[str] = []


def event_id() -> str:
    """A new event id: a random UUID (``uuid.uuid4()``), drawn 256 at a time."""
    try:
        return _IDS.pop()
    except IndexError:
        _IDS.extend(_uuid4s(256))
        return _IDS.pop()


def _json_time(at: datetime) -> str:
    """A UTC time as the envelope's ``model_dump(mode="json")`` writes it."""
    return at.isoformat().replace("+00:00", "Z")
Decide = Callable[[Any], "Decision[Any]"]


class ConcurrencyConflict(Exception):
    """Another writer changed the aggregate between our read and our write."""


@dataclass
class Outcome(Generic[S]):
    state: S | None
    events: list[CloudEvent]
    result: Any
    duplicate: bool = False


@dataclass
class Applied:
    """How one event of a batch went: applied, recognised as a repeat, or refused
    (``error``: the domain rule it broke, or the bug it hit)."""

    error: Exception | None = None
    duplicate: bool = False


@dataclass
class _Fold:
    """One aggregate's events of a batch, decided one after the other on its state."""

    doc: dict[str, Any] | None
    state: Any
    version: int
    seq: dict[str, int]
    changed: bool = False
    stored: list[dict[str, Any]] = field(default_factory=list)
    """The new events, as the outbox keeps them."""
    marks: dict[str, int] = field(default_factory=dict)
    items: list[int] = field(default_factory=list)

    def add(self, stored: list[dict[str, Any]], decision: Decision[Any], key: str | None, sequence: int) -> None:
        """One decision applied: its events appended, its cause marked, its state taken."""
        self.stored += stored
        self.version += len(stored)
        if key is not None:
            self.seq[key] = self.marks[key] = sequence
        if decision.state is not None and decision.state is not self.state:  # the very state given: no change
            self.state, self.changed = decision.state, True


def _refused_as_duplicates(err: BulkWriteError, written: list[str]) -> list[str]:
    """The aggregates of ``written`` (in the order of the bulk write) whose insert ``err``
    refused as a duplicate key."""
    return [written[e["index"]] for e in err.details.get("writeErrors", ()) if e.get("code") == DUPLICATE_KEY]


class AggregateStore(Generic[S]):
    """Loads and saves one kind of aggregate with its embedded outbox."""

    def __init__(
        self,
        collection: AsyncCollection[dict[str, Any]],
        *,
        service: str,
        state_type: type[S],
        on_saved: Callable[..., None] | None = None,
    ) -> None:
        self.collection = collection
        self.service = service
        self.source = f"/medcard/{service}"
        self.state_type = state_type
        self.on_saved = on_saved

    async def create_indexes(self) -> None:
        """The relay's index of the documents whose outbox holds events (``flag_index``: a
        document the relay has cleared, nearly all of them, has no entry in it)."""
        await flag_index(self.collection, "pending")

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

    async def get_docs(self, aggregate_ids: list[str]) -> list[dict[str, Any] | None]:
        """The documents of ``aggregate_ids`` read by one ``$in`` query, in that order (None
        for an aggregate that does not exist)."""
        if not aggregate_ids:
            return []
        ids = sorted(set(aggregate_ids))  # in one batch: more than 101 would take a getMore
        docs = await one_batch(self.collection.find({"_id": {"$in": ids}}), len(ids))
        found = {d["_id"]: d for d in docs}
        return [found.get(a) for a in aggregate_ids]

    async def execute(
        self,
        aggregate_id: str,
        decide: Callable[[S | None], Decision[S]],
        *,
        correlation_id: str,
        cause: CloudEvent | None = None,
        retries: int = 50,
        loaded: dict[str, Any] | None = None,
        loaded_state: S | None = None,
        fresh: bool = False,
    ) -> Outcome[S]:
        """Load, decide (pure), save state + events atomically; retry on a concurrent write.

        With ``cause`` (an event being applied), a repeat or older event changes nothing.
        ``loaded`` is the aggregate's document if the caller has just read it, and
        ``loaded_state`` its state if the caller has made it (``state_of(loaded)``: saves
        validating the document twice; ``decide`` must not change it). ``fresh``: the id
        was just made (``new_id``), so no document can have it and the first attempt does
        not read (were one there, the insert would fail and the next attempt read it).
        Domain errors raised by ``decide`` propagate and nothing is written.
        """
        for attempt in range(retries):
            # ``loaded``: the document as the caller just read it (saves a read; if it is
            # stale the guarded write fails and the next attempt reads afresh).
            doc: dict[str, Any] | None = loaded if attempt == 0 and loaded is not None else None
            if doc is None and not (fresh and attempt == 0):
                doc = await self.collection.find_one({"_id": aggregate_id})
            if cause is not None and doc is not None and already_applied(doc, cause):
                return Outcome(self._state(doc), [], None, duplicate=True)
            first = attempt == 0 and loaded is not None and loaded_state is not None
            state = loaded_state if first else self._state(doc)
            decision = decide(state)
            fold = self._fold_one(aggregate_id, doc, state, decision, correlation_id, cause)
            write = self._write_of(aggregate_id, fold)
            if write is None:
                return Outcome(decision.state, [], decision.result)
            try:
                await self._write_one(aggregate_id, write)
            except ConcurrencyConflict:
                await asyncio.sleep(0)
                continue
            events = self._envelopes(fold.stored, decision.events)
            if events and self.on_saved:
                self.on_saved(self.collection.name, aggregate_id, handed_outbox(doc, fold.stored, fold.version))
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
        ``execute``'s and sets only the fields the decision changed; if any guard failed
        (another writer got there first), the whole group is applied again one by one with
        ``execute``, where the mark of ``cause`` on each aggregate that the bulk write did
        change makes it a no-op. Returns how many aggregates were written."""
        writes: list[InsertOne[dict[str, Any]] | UpdateOne] = []
        ids: list[str] = []
        for doc in docs:
            if already_applied(doc, cause):
                continue
            state = self._state(doc)
            fold = self._fold_one(doc["_id"], doc, state, decide(state), correlation_id, cause)
            write = self._write_of(doc["_id"], fold)
            if write is not None:
                writes.append(write)
                ids.append(doc["_id"])
        if not writes:
            return 0
        if not await self._all_landed(writes):
            for aggregate_id in ids:
                await self.execute(aggregate_id, decide, correlation_id=correlation_id, cause=cause)
        if self.on_saved:
            for aggregate_id in ids:
                self.on_saved(self.collection.name, aggregate_id)
        return len(ids)

    async def execute_loaded(self, items: list[tuple[dict[str, Any], S | None, Callable[[S | None], Decision[S]], str]]
                             ) -> list[Any]:
        """Commands on aggregates just read, ``(document, its state, decide, correlation id)``,
        saved by one ``bulk_write`` of guarded writes (``execute``'s, one per aggregate).
        Returns each decision's result, in order.

        If any guard failed (another writer got there first), each item is executed again
        by ``execute`` on a fresh read: ``decide`` must then decide nothing new for an
        aggregate it has already changed (as a command that acts only in one status, or
        that recognises its own effect, does)."""
        writes: list[InsertOne[dict[str, Any]] | UpdateOne] = []
        saved: list[tuple[str, _Fold]] = []
        results = []
        for doc, state, decide, correlation_id in items:
            decision = decide(state)
            results.append(decision.result)
            fold = self._fold_one(doc["_id"], doc, state, decision, correlation_id, None)
            write = self._write_of(doc["_id"], fold)
            if write is not None:
                writes.append(write)
                saved.append((doc["_id"], fold))
        if not writes:
            return results
        if not await self._all_landed(writes):
            return [(await self.execute(doc["_id"], decide, correlation_id=correlation_id)).result
                    for doc, _, decide, correlation_id in items]
        if self.on_saved:
            for aggregate_id, fold in saved:
                if fold.stored:
                    self.on_saved(self.collection.name, aggregate_id, handed_outbox(fold.doc, fold.stored, fold.version))
        return results

    async def _all_landed(self, writes: list[InsertOne[dict[str, Any]] | UpdateOne]) -> bool:
        """One unordered ``bulk_write`` of guarded writes; False when a guard failed (another
        writer got there first) or the storage aborted some for another's locks (the others
        landed): the caller then applies its items one by one. A refusal raises."""
        try:
            result = await self.collection.bulk_write(writes, ordered=False)
        except BulkWriteError as err:
            if not write_conflict(err):
                raise
            return False
        return result.matched_count >= sum(isinstance(w, UpdateOne) for w in writes)

    async def execute_batch(self, items: list[tuple[str, Decide, CloudEvent]],
                            before_write: Awaitable[Any] | None = None, *, fresh: bool = False) -> list[Applied]:
        """Apply a consumer batch: ``(aggregate id, decide, cause)`` in log order.

        Each aggregate is read once; its events are decided one after the other on its
        state (a repeat or older event, by the marks of its cause, changes nothing; one
        whose decision raises is refused and the next sees the state before it); then
        its new state (the fields that changed), all the marks and all the events are saved
        by one guarded write, ``BATCH_GROUP`` aggregates per ``$in`` read and per
        ``bulk_write``. If a guard fails (another writer got there first), that group's
        items are applied again one by one with ``execute``, where the marks of what the
        bulk write did save make those no-ops. Returns one ``Applied`` per item.
        ``before_write`` (the batch's other writes, under way) is awaited before the first
        write: the aggregates are read and decided meanwhile. ``fresh``: the aggregates are
        new but for a redelivery (ids derived from their cause), so they are inserted without
        a read; an id that is there already fails its insert, and the group goes one by one."""
        results = [Applied() for _ in items]
        order: dict[str, list[int]] = {}
        for i, (aggregate_id, _, _) in enumerate(items):
            order.setdefault(aggregate_id, []).append(i)
        ids = list(order)
        for start in range(0, len(ids), BATCH_GROUP):
            group = ids[start:start + BATCH_GROUP]
            docs = [None] * len(group) if fresh else await self.get_docs(group)
            folds = {a: self._fold(a, doc, [(i, *items[i][1:]) for i in order[a]], results)
                     for a, doc in zip(group, docs, strict=True)}
            written = [(a, w) for a, fold in folds.items() if (w := self._write_of(a, fold)) is not None]
            writes = [w for _, w in written]
            if before_write is not None:
                waited, before_write = before_write, None
                await waited
            if not writes:
                continue
            try:
                result = await self.collection.bulk_write(writes, ordered=False)
                conflict = result.matched_count < sum(isinstance(w, UpdateOne) for w in writes)
            except BulkWriteError as err:
                conflict = True
                if fresh:  # an insert refused as a duplicate: that aggregate was there before
                    for a in _refused_as_duplicates(err, [a for a, _ in written]):
                        for i in order[a]:
                            results[i].duplicate = True
            if conflict:
                await self._one_by_one([i for a in group for i in order[a]], items, results)
            if self.on_saved:
                for a, fold in folds.items():
                    if fold.stored:
                        # Without a conflict every write of the group landed: its outbox is known.
                        self.on_saved(self.collection.name, a,
                                      None if conflict else handed_outbox(fold.doc, fold.stored, fold.version))
        if before_write is not None:
            await before_write
        return results

    def _fold(self, aggregate_id: str, doc: dict[str, Any] | None, events: list[tuple[int, Decide, CloudEvent]],
              results: list[Applied]) -> _Fold:
        fold = _Fold(doc=doc, state=self._state(doc), version=doc["version"] if doc else 0,
                     seq=dict((doc or {}).get("seq") or {}))
        for i, decide, cause in events:
            fold.items.append(i)
            key = seq_key(cause)
            if int(fold.seq.get(key, 0)) >= cause.sequence:
                results[i].duplicate = True
                continue
            try:
                decision = decide(fold.state)
            except Exception as err:  # refused: dead-lettered by the caller, nothing saved
                results[i].error = err
                continue
            if doc is None and fold.state is None and decision.state is None:
                continue  # like ``execute``: nothing to create
            fold.add(self._stored(aggregate_id, fold.version, decision.events, cause.correlationid, cause.id),
                     decision, key, cause.sequence)
        return fold

    def _fold_one(self, aggregate_id: str, doc: dict[str, Any] | None, state: S | None, decision: Decision[S],
                  correlation_id: str, cause: CloudEvent | None) -> _Fold:
        """One decision over ``doc``, as ``_fold`` keeps a batch's: what ``_write_of`` saves."""
        fold = _Fold(doc=doc, state=state, version=doc["version"] if doc else 0,
                     seq=dict((doc or {}).get("seq") or {}))
        if doc is None and decision.state is None:
            return fold  # nothing to create (its events, if any, go nowhere)
        stored = self._stored(aggregate_id, fold.version, decision.events, correlation_id, cause.id if cause else None)
        fold.add(stored, decision, seq_key(cause) if cause else None, cause.sequence if cause else 0)
        return fold

    def _write_of(self, aggregate_id: str, fold: _Fold) -> InsertOne[dict[str, Any]] | UpdateOne | None:
        if not (fold.marks or fold.stored or fold.changed):
            return None
        state = fold.state.model_dump(mode="json") if fold.changed else None
        if fold.doc is None:
            return InsertOne({"_id": aggregate_id, **(state or {}), "version": fold.version, "rev": 1,
                              "outbox": fold.stored, "pending": bool(fold.stored), "outbox_done": 0,
                              "seq": fold.marks})
        return self._update(fold.doc, state, fold.marks, fold.stored, fold.version)

    @staticmethod
    def _update(doc: dict[str, Any], state: dict[str, Any] | None, marks: dict[str, int],
                stored: list[dict[str, Any]], version: int) -> UpdateOne:
        """The write, guarded by the ``rev`` it was read at, that turns ``doc`` into
        ``state``, adds the ``marks`` and appends the ``stored`` events. Only what changed
        is written (the document is the same as with every field set): a field whose value
        differs is set, and a list that only grew by items at its end gets them pushed."""
        sets: dict[str, Any] = {}
        pushes: dict[str, Any] = {}
        for k, v in (state or {}).items():
            old = doc.get(k, _MISSING)
            if old == v:
                continue
            if type(old) is list and type(v) is list and len(v) > len(old) and v[:len(old)] == old:
                pushes[k] = {"$each": v[len(old):]}
            else:
                sets[k] = v
        rev = doc.get("rev", 0)
        sets.update({f"seq.{k}": v for k, v in marks.items()})
        sets["version"], sets["rev"] = version, rev + 1
        if stored:
            sets["pending"] = True
            pushes["outbox"] = {"$each": stored}
        update: dict[str, Any] = {"$set": sets}
        if pushes:
            update["$push"] = pushes
        return UpdateOne({"_id": doc["_id"], "rev": rev}, update)

    async def _one_by_one(self, indexes: list[int], items: list[tuple[str, Decide, CloudEvent]],
                          results: list[Applied]) -> None:
        for i in indexes:
            aggregate_id, decide, cause = items[i]
            try:
                outcome = await self.execute(aggregate_id, decide, correlation_id=cause.correlationid, cause=cause)
            except PyMongoError:
                raise  # the database: the caller retries the batch
            except Exception as err:  # refused (or a write that kept conflicting)
                results[i] = Applied(error=err)
            else:
                # A repeat only if it was one before the bulk write (which may have saved it).
                results[i] = Applied(duplicate=outcome.duplicate and results[i].duplicate)

    def _stored(self, aggregate_id: str, version: int, events: list[EventData], correlation_id: str,
                cause_id: str | None) -> list[dict[str, Any]]:
        """``events`` as the outbox keeps them: what ``[e.model_dump(mode="json") for e in
        self._envelopes(...)]`` gives, built without the envelope models (the payloads
        are models already validated; the envelope's attributes are ours)."""
        if not events:
            return []
        if not aggregate_id:
            raise ValueError("an event's partitionkey (the aggregate id) must not be empty")
        time = _json_time(datetime.now(UTC))
        return [
            {"specversion": SPECVERSION, "id": event_id(), "source": self.source, "type": data.event_type(),
             "time": time, "subject": getattr(data, "card_number", None) or aggregate_id,
             "datacontenttype": "application/json", "sequence": version + i, "partitionkey": aggregate_id,
             "correlationid": correlation_id, "causationid": cause_id, "data": data.model_dump(mode="json")}
            for i, data in enumerate(events, start=1)
        ]

    async def _write_one(self, aggregate_id: str, write: InsertOne[dict[str, Any]] | UpdateOne) -> None:
        """One aggregate's write (``_write_of``'s); ConcurrencyConflict when another writer
        got there first (its ``rev`` moved, or it created the aggregate meanwhile)."""
        try:
            result = await self.collection.bulk_write([write], ordered=True)
        except BulkWriteError as err:
            if write_conflict(err) or all(e.get("code") == DUPLICATE_KEY for e in err.details.get("writeErrors", [])):
                raise ConcurrencyConflict(aggregate_id) from None  # nothing written: read again, decide again
            raise
        if isinstance(write, UpdateOne) and result.matched_count == 0:
            raise ConcurrencyConflict(aggregate_id)

    def _envelopes(self, stored: list[dict[str, Any]], events: list[EventData]) -> list[CloudEvent]:
        """The saved events as envelopes (for the command's caller), made from what the
        outbox keeps without validating it again: the payloads are the decision's models."""
        if not stored:
            return []
        at = datetime.fromisoformat(stored[0]["time"].replace("Z", "+00:00"))
        return [ENVELOPES[data.event_type()].model_construct(**{**doc, "time": at, "data": data})
                for doc, data in zip(stored, events, strict=True)]


def handed_outbox(doc: dict[str, Any] | None, pushed: list[dict[str, Any]], version: int) -> dict[str, Any] | None:
    """The outbox a guarded write over ``doc`` (None: an insert) left, for the relay
    (``OutboxRelay.notify``): what it held when read, then ``pushed``. The relay may have
    cleared some of what it held meanwhile (its clean-up does not move ``rev``): those were
    published already, and the relay skips them. None when ``doc`` was read without its
    outbox (the relay then reads it: nothing unpublished may be skipped)."""
    if doc is not None and ("outbox" not in doc or "outbox_done" not in doc):
        return None
    held = (doc.get("outbox") or []) if doc else []
    return {"version": version, "outbox_done": doc.get("outbox_done", 0) if doc else 0,
            "outbox": [*held, *pushed] if held else pushed}
