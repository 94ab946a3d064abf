"""Queries on an indexed field answer exactly as MongoDB's and use the index instead of
reading the whole collection, as the server's own ``explain`` says (DocumentDB's plans
are PostgreSQL's: ``Index Scan`` / ``Bitmap Index Scan`` naming the index; MongoDB's
winning plan has an ``IXSCAN``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import BaseModel
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from shared.database import count, count_flagged, find_flagged, one_batch, partial_index
from shared.outbox import AggregateStore
from shared.relay import pending_scan
from shared.settings import Settings

pytestmark = pytest.mark.infra

VALUES = ["abc", "张三", "<a&b>", 'q"uote', "back\\slash", "e\u0301", "", "ABC"]


@pytest.fixture
async def indexed(settings: Settings) -> AsyncIterator[tuple[AsyncMongoClient[dict[str, Any]], AsyncCollection[dict[str, Any]]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    coll = client[settings.database("queries")]["docs"]
    await coll.create_index([("k", 1), ("n", 1)])
    docs = [{"_id": f"d{i}", "k": v, "n": i % 3, "other": v} for i, v in enumerate(VALUES * 3)]
    docs += [{"_id": "int", "k": 5, "n": 0}, {"_id": "missing", "n": 0}, {"_id": "nested", "k": {"v": "abc"}}]
    await coll.insert_many(docs)
    yield client, coll
    await client.close()


async def ids(coll: AsyncCollection[dict[str, Any]], flt: dict[str, Any]) -> set[str]:
    return {d["_id"] async for d in coll.find(flt)}


async def test_equality_on_an_indexed_field_finds_exactly_the_matching_documents(indexed: Any) -> None:
    _, coll = indexed
    for v in VALUES:
        want = {f"d{i}" for i, x in enumerate(VALUES * 3) if x == v}
        assert await ids(coll, {"k": v}) == want, v
        assert await ids(coll, {"k": v, "n": 1}) == {f"d{i}" for i, x in enumerate(VALUES * 3) if x == v and i % 3 == 1}
        assert await ids(coll, {"other": v, "k": v}) == want
    assert await ids(coll, {"k": "nothing"}) == set()
    await coll.insert_many([{"_id": "t", "k": True}, {"_id": "f", "k": False}])
    assert await ids(coll, {"k": True}) == {"t"} and await ids(coll, {"k": False}) == {"f"}
    assert await ids(coll, {"k": 5}) == {"int"}
    assert await ids(coll, {"k": {"$in": ["abc", "ABC"]}}) == {f"d{i}" for i, x in enumerate(VALUES * 3) if x in ("abc", "ABC")}


async def test_updates_and_deletes_by_an_indexed_field_touch_only_matching_documents(indexed: Any) -> None:
    _, coll = indexed
    res = await coll.update_many({"k": "张三"}, {"$set": {"seen": True}})
    assert res.matched_count == 3
    assert await ids(coll, {"seen": True}) == {f"d{i}" for i, x in enumerate(VALUES * 3) if x == "张三"}
    res = await coll.delete_many({"k": "<a&b>", "n": {"$gte": 0}})
    assert res.deleted_count == 3
    assert await coll.count_documents({}) == len(VALUES) * 3 + 3 - 3


def _plan_nodes(plan: Any) -> Iterator[dict[str, Any]]:
    """Every node of an explain plan, whichever server wrote it."""
    if isinstance(plan, dict):
        yield plan
        for value in plan.values():
            yield from _plan_nodes(value)
    elif isinstance(plan, list):
        for value in plan:
            yield from _plan_nodes(value)


async def _index_used(coll: AsyncCollection[dict[str, Any]], flt: dict[str, Any]) -> set[str]:
    """The names of the indexes the server's plan for ``find(flt)`` scans."""
    explain = await coll.database.command("explain", {"find": coll.name, "filter": flt})
    nodes = list(_plan_nodes(explain["queryPlanner"]))
    postgres = {n["Index Name"] for n in nodes if n.get("Node Type") in INDEX_SCANS and "Index Name" in n}
    mongodb = {n["indexName"] for n in nodes if n.get("stage") == "IXSCAN"}
    return postgres | mongodb


INDEX_SCANS = {"Index Scan", "Bitmap Index Scan", "Index Only Scan"}


async def test_the_server_uses_the_index(indexed: Any) -> None:
    _, coll = indexed
    await coll.insert_many([{"_id": f"bulk{i}", "k": f"v{i % 100}", "n": i % 3} for i in range(3000)])
    assert "k_1_n_1" in await _index_used(coll, {"k": "abc", "n": 1})
    assert "k_1_n_1" in await _index_used(coll, {"k": "v7"})
    assert "_id_" in await _index_used(coll, {"_id": {"$in": ["d1", "d2", "bulk9"]}})
    assert "_id_" in await _index_used(coll, {"_id": {"$gte": "bulk1", "$lt": "bulk2"}})  # the event log's replay
    assert "k_1_n_1" not in await _index_used(coll, {"other": "abc"})  # a field it does not cover


class _Held(BaseModel):
    n: int = 0


async def test_the_relays_index_holds_only_documents_with_events_to_publish(settings: Settings) -> None:
    """The outbox index is partial (a cleared document has no entry in it), a full one from
    before is replaced, and the relay's query for pending documents is answered from it."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    coll = client[settings.database("queries")]["outboxes"]
    try:
        await coll.create_index("pending")  # as every store had it before
        store = AggregateStore(coll, service="queries", state_type=_Held)
        await asyncio.gather(store.create_indexes(), store.create_indexes())  # two replicas starting
        await store.create_indexes()  # at every start: nothing to change the next time
        fresh = AggregateStore(client[settings.database("queries")]["fresh"], service="queries", state_type=_Held)
        await asyncio.gather(fresh.create_indexes(), fresh.create_indexes())  # a new deployment's replicas
        assert (await fresh.collection.index_information())["pending_1"]["partialFilterExpression"] == {"pending": True}
        info = await coll.index_information()
        assert info["pending_1"]["partialFilterExpression"] == {"pending": True}
        assert [name for name, spec in info.items() if spec["key"] == [("pending", 1)]] == ["pending_1"]
        await coll.insert_many([{"_id": f"d{i}", "pending": i % 500 == 0, "outbox": []} for i in range(3000)])
        assert "pending_1" in await _index_used(coll, {"pending": True})
        assert await count(coll, {"pending": True}) == 6
        assert {d["_id"] for d in await one_batch(coll.find({"pending": True}), 100)} == \
            {f"d{i}" for i in range(0, 3000, 500)}
        # The relay's full scan names the index: the planner has no statistics of a flag in the
        # documents and read 2.8 million messages whole rather than the index's few entries.
        await coll.insert_many([{"_id": f"p{i}", "pending": True, "outbox": []} for i in range(3000)])
        plan = await pending_scan(coll).explain()
        assert "pending_1" in {n["Index Name"] for n in _plan_nodes(plan["queryPlanner"])
                               if n.get("Node Type") in INDEX_SCANS and "Index Name" in n}
        assert await count_flagged(coll, "pending") == 3006
        assert len(await pending_scan(coll).to_list()) == 3006
        paged = find_flagged(coll, "pending", {"_id": 1}, also={"_id": {"$gt": "p2"}}).sort("_id", 1)
        plan = await paged.clone().explain()
        assert "pending_1" in {n["Index Name"] for n in _plan_nodes(plan["queryPlanner"])
                               if n.get("Node Type") in INDEX_SCANS and "Index Name" in n}
        assert [d["_id"] for d in await paged.to_list()] == sorted(f"p{i}" for i in range(3000) if f"p{i}" > "p2")
    finally:
        await client.close()


async def test_a_partial_index_of_a_status_replaces_the_full_one_and_answers_the_reads_of_that_status(
    settings: Settings,
) -> None:
    """The SMS dispatcher's index of due messages holds the pending ones only (a sent message,
    written twice more, adds nothing to it); the full index of before is dropped, replicas
    starting together make it once, and the reads of a status are answered from its index."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    coll = client[settings.database("queries")]["messages"]
    try:
        await coll.create_index([("status", 1), ("next_attempt_at", 1)])  # as it was before
        due = partial_index(coll, [("status", 1), ("next_attempt_at", 1)], name="due", when={"status": "pending"},
                            replaces="status_1_next_attempt_at_1")
        failed = partial_index(coll, [("status", 1), ("created_at", 1)], name="failed", when={"status": "failed"})
        await asyncio.gather(due, partial_index(coll, [("status", 1), ("next_attempt_at", 1)], name="due",
                                                when={"status": "pending"}, replaces="status_1_next_attempt_at_1"))
        await failed
        info = await coll.index_information()
        assert sorted(info) == ["_id_", "due", "failed"]
        assert info["due"]["partialFilterExpression"] == {"status": "pending"}
        statuses = ["sent"] * 97 + ["pending", "failed", "awaiting_contact"]
        await coll.insert_many([{"_id": f"m{i}", "status": statuses[i % 100], "next_attempt_at": f"t{i:05d}",
                                 "created_at": f"t{i:05d}"} for i in range(3000)])
        assert "due" in await _index_used(coll, {"status": "pending", "next_attempt_at": {"$lte": "t02000"}})
        assert "failed" in await _index_used(coll, {"status": "failed"})
        assert not {"due", "failed"} & await _index_used(coll, {"status": "sent"})
        assert await count(coll, {"status": "pending", "next_attempt_at": {"$lte": "t02000"}}) == 20
    finally:
        await client.close()
