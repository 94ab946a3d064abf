"""An in-memory stand-in for the part of pymongo's AsyncCollection that the outbox relay and
the aggregate store use: ``find`` (``limit``, ``batch_size``, a cursor read a page at a
time with ``to_list(length)``; ``sort`` ignored), ``find_one``, ``insert_one`` (a duplicate
``_id`` raises ``DuplicateKeyError``), ``update_one`` (``upsert`` too) and ``bulk_write`` of
``InsertOne`` (a taken ``_id``: the server's duplicate-key write error), ``UpdateOne`` and
``UpdateMany`` (answering ``matched_count``), on equality, ``$in``, ``$set`` (of dotted paths
too), ``$max`` and ``$push`` with ``$each``. Every read yields to the event loop, and a test
can hold the next read at its start (``hold_next_read``) to act meanwhile."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from pymongo import InsertOne, UpdateMany, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

Doc = dict[str, Any]


def matches(doc: Doc, query: Doc) -> bool:
    for field, wanted in query.items():
        if isinstance(wanted, dict) and "$in" in wanted:
            if doc.get(field) not in wanted["$in"]:
                return False
        elif doc.get(field) != wanted:
            return False
    return True


def apply_update(doc: Doc, update: Any) -> None:
    """``$set`` (a dotted path sets a field of a sub-document), ``$max`` and ``$push`` of ``$each``."""
    for field, value in update.get("$set", {}).items():
        *parents, last = field.split(".")
        target = doc
        for parent in parents:
            target = target.setdefault(parent, {})
        target[last] = value
    for field, value in update.get("$max", {}).items():
        doc[field] = max(doc.get(field, value), value)
    for field, value in update.get("$push", {}).items():
        doc.setdefault(field, []).extend(copy.deepcopy(value["$each"]))


class BulkResult:
    def __init__(self) -> None:
        self.matched_count = 0
        self.modified_count = 0
        self.upserted_id: Any = None


class MemoryCursor:
    def __init__(self, collection: MemoryCollection, query: Doc) -> None:
        self.collection = collection
        self.query = query
        self.most: int | None = None
        self.found: list[Doc] | None = None

    def clone(self) -> MemoryCursor:
        """The same query, not yet run (as pymongo's ``clone``)."""
        again = MemoryCursor(self.collection, self.query)
        again.most = self.most
        return again

    def limit(self, n: int) -> MemoryCursor:
        self.most = abs(n)  # negative: the same documents, in one batch (as pymongo sends it)
        return self

    def batch_size(self, _: int) -> MemoryCursor:
        return self

    def hint(self, _: Any) -> MemoryCursor:
        return self  # no indexes here

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

    async def insert_one(self, doc: Doc) -> None:
        await asyncio.sleep(0)
        self._insert(doc)

    def _insert(self, doc: Doc) -> None:
        if doc["_id"] in self.docs:
            raise DuplicateKeyError(f"duplicate key: {doc['_id']}")
        self.docs[doc["_id"]] = copy.deepcopy(doc)

    async def update_one(self, query: Doc, update: Doc, upsert: bool = False) -> BulkResult:
        await asyncio.sleep(0)
        result = BulkResult()
        doc = next((d for d in self.docs.values() if matches(d, query)), None)
        if doc is None and upsert:
            doc = {field: value for field, value in query.items() if not isinstance(value, dict)}
            self._insert(doc)
            doc, result.upserted_id = self.docs[doc["_id"]], doc["_id"]
        elif doc is not None:
            result.matched_count = result.modified_count = 1
        if doc is not None:
            apply_update(doc, update)
        return result

    async def bulk_write(self, requests: list[InsertOne[Doc] | UpdateOne | UpdateMany],
                         ordered: bool = True) -> BulkResult:
        await asyncio.sleep(0)
        result = BulkResult()
        for index, request in enumerate(requests):
            if isinstance(request, InsertOne):
                if request._doc["_id"] in self.docs:  # as the server answers a bulk write
                    raise BulkWriteError({"writeErrors": [{"index": index, "code": 11000,
                                                           "errmsg": f"duplicate key {request._doc['_id']}"}]})
                self._insert(request._doc)
                continue
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
                apply_update(doc, request._doc)
        return result
