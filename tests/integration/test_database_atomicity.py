"""The MongoDB-wire server must give single-document atomicity under concurrent writers:
the embedded outbox and "never overdraw" depend on it. FerretDB 2 on DocumentDB gives it
unpatched (each write is one PostgreSQL statement on the document's row), as MongoDB does."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo import AsyncMongoClient, UpdateOne

from shared.settings import Settings

pytestmark = pytest.mark.infra


async def test_concurrent_increments_on_one_document_are_never_lost(settings: Settings) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    coll = client[settings.database("atomic")]["counters"]
    await coll.insert_one({"_id": "c", "a": 0, "b": 0})

    async def bump(field: str) -> None:
        for _ in range(25):
            await coll.update_one({"_id": "c"}, {"$inc": {field: 1}})

    await asyncio.gather(*(bump(f) for f in ("a", "b") for _ in range(10)))
    doc = await coll.find_one({"_id": "c"})
    await client.close()
    assert doc == {"_id": "c", "a": 250, "b": 250}


async def test_a_guarded_update_succeeds_for_exactly_one_of_concurrent_writers(settings: Settings) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    coll = client[settings.database("atomic")]["guarded"]
    await coll.insert_one({"_id": "g", "rev": 0, "wins": 0})

    async def compare_and_set() -> int:
        won = 0
        for _ in range(20):
            doc = await coll.find_one({"_id": "g"})
            assert doc is not None
            res = await coll.update_one({"_id": "g", "rev": doc["rev"]}, {"$inc": {"rev": 1, "wins": 1}})
            won += res.modified_count
        return won

    wins = await asyncio.gather(*(compare_and_set() for _ in range(10)))
    doc = await coll.find_one({"_id": "g"})
    await client.close()
    assert doc is not None and doc["rev"] == doc["wins"] == sum(wins)


async def test_a_bulk_write_updating_hundreds_of_existing_documents_completes(settings: Settings) -> None:
    """The outbox relay clears hundreds of outboxes in one bulk_write; it must complete
    (bounded) and leave the collection writable."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url, socketTimeoutMS=30_000)
    coll = client[settings.database("atomic")]["bulk"]
    await coll.insert_many([{"_id": f"d{i}", "outbox": [{"n": i}], "pending": True} for i in range(300)])
    ops = [UpdateOne({"_id": f"d{i}"}, {"$set": {"outbox": [], "pending": False}}) for i in range(300)]
    result = await asyncio.wait_for(coll.bulk_write(ops, ordered=False), 30)
    after = await asyncio.wait_for(coll.update_one({"_id": "d0"}, {"$set": {"again": True}}), 10)
    pending = await coll.count_documents({"pending": True})
    await client.close()
    assert (result.modified_count, after.modified_count, pending) == (300, 1, 0)
