"""An in-memory stand-in for the part of pymongo's AsyncCollection that the outbox relay and
the aggregate store's reads use: ``find`` (``limit``, ``batch_size``, a cursor read a page at a
time with ``to_list(length)``; ``sort`` ignored), ``find_one``, ``insert_one``, ``update_one`` and ``bulk_write`` of
``UpdateOne`` and ``UpdateMany`` (answering ``matched_count``), on equality, ``$in``, ``$set`` (also of a
``field.key``), ``$max`` and ``$push`` of ``$each``: enough for ``AggregateStore.execute``. Every read yields to the event loop,
and a test can hold the next read at its start (``hold_next_read``) to act meanwhile."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from pymongo import UpdateMany, UpdateOne
from pymongo.errors import DuplicateKeyError

Doc = dict[str, Any]


def matches(doc: Doc, query: Doc) -> bool:
    for field, wanted in query.items():
        if isinstance(wanted, dict) and "$in" in wanted:
            if doc.get(field) not in wanted["$in"]:
                return False
        elif doc.get(field) != wanted:
            return False
    return True


class BulkResult:
    def __init__(self) -> None:
        self.matched_count = 0


class MemoryCursor:
    def __init__(self, collection: MemoryCollection, query: Doc) -> None:
        self.collection = collection
        self.query = query
        self.most: int | None = None
        self.found: list[Doc] | None = None

    def limit(self, n: int) -> MemoryCursor:
        self.most = n
        return self

    def sort(self, *_: Any) -> MemoryCursor:
        return self  # the order is not what these tests are about

    async def to_list(self, length: int | None = None) -> list[Doc]:
        await self.collection.reading()
        if self.found is None:  # the query runs at the first read; later reads page through it
            found = [copy.deepcopy(d) for d in self.collection.docs.values() if matches(d, self.query)]
            self.found = found[:self.most] if self.most else found
        page, self.found = (self.found, []) if length is None else (self.found[:length], self.found[length:])
        return page

    async def close(self) -> None: ...


class MemoryCollection:
    def __init__(self, name: str) -> None:
        self.name = name
        self.docs: dict[str, Doc] = {}
        self.queries: list[Doc] = []
        self.held = asyncio.Event()
        """Set when a read is being held (see ``hold_next_read``)."""
        self._gate: asyncio.Event | None = None

    def hold_next_read(self) -> asyncio.Event:
        """The next read waits until the returned event is set."""
        self._gate = asyncio.Event()
        self.held.clear()
        return self._gate

    async def reading(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            self.held.set()
            await gate.wait()
        await asyncio.sleep(0)

    def find(self, query: Doc, fields: Doc | None = None, batch_size: int = 0) -> MemoryCursor:
        self.queries.append(query)
        return MemoryCursor(self, query)

    async def find_one(self, query: Doc, fields: Doc | None = None) -> Doc | None:
        self.queries.append(query)
        await self.reading()
        return next((copy.deepcopy(d) for d in self.docs.values() if matches(d, query)), None)

    async def bulk_write(self, requests: list[UpdateOne | UpdateMany], ordered: bool = True) -> BulkResult:
        await asyncio.sleep(0)
        result = BulkResult()
        for request in requests:
            by_id = request._filter.get("_id")
            if isinstance(by_id, str):
                candidates = [self.docs[by_id]] if by_id in self.docs else []
            elif isinstance(by_id, dict) and "$in" in by_id:
                candidates = [self.docs[i] for i in by_id["$in"] if i in self.docs]
            else:
                candidates = list(self.docs.values())
            found = [d for d in candidates if matches(d, request._filter)]
            for doc in found if isinstance(request, UpdateMany) else found[:1]:
                result.matched_count += 1
                for field, value in request._doc.get("$set", {}).items():
                    parent, _, key = field.rpartition(".")
                    (doc.setdefault(parent, {}) if parent else doc)[key] = copy.deepcopy(value)
                for field, value in request._doc.get("$max", {}).items():
                    doc[field] = max(doc.get(field, value), value)
                for field, value in request._doc.get("$push", {}).items():
                    doc.setdefault(field, []).extend(copy.deepcopy(value["$each"]))
        return result

    async def update_one(self, query: Doc, update: Doc) -> BulkResult:
        return await self.bulk_write([UpdateOne(query, update)])

    async def insert_one(self, doc: Doc) -> None:
        await asyncio.sleep(0)
        if doc["_id"] in self.docs:
            raise DuplicateKeyError(f"duplicate _id {doc['_id']}")
        self.docs[doc["_id"]] = copy.deepcopy(doc)
