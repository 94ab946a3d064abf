"""The aggregate store's batch read: one ``$in`` query, the documents in the order asked
(None for an aggregate that does not exist), as the one-by-one reads it replaced gave them."""

from __future__ import annotations

from pydantic import BaseModel

from shared.outbox import AggregateStore
from tests.unit.memory_collection import MemoryCollection


class Thing(BaseModel):
    name: str


async def test_get_docs_reads_by_id_once_in_the_order_asked() -> None:
    coll = MemoryCollection("things")
    coll.docs = {i: {"_id": i, "name": i, "version": 0} for i in ("A", "B", "C")}
    store = AggregateStore(coll, service="test", state_type=Thing)  # type: ignore[arg-type]
    docs = await store.get_docs(["C", "X", "A", "C"])
    assert [d["_id"] if d else None for d in docs] == ["C", None, "A", "C"]
    assert coll.queries == [{"_id": {"$in": ["A", "C", "X"]}}]  # each id once, in one batch
    assert await store.get_docs([]) == [] and len(coll.queries) == 1


async def test_a_fresh_aggregate_is_created_without_a_read_and_one_already_there_is_read_on_the_retry() -> None:
    from shared.domain import Decision

    coll = MemoryCollection("things")
    store = AggregateStore(coll, service="test", state_type=Thing)  # type: ignore[arg-type]
    seen: list[Thing | None] = []

    def create(state: Thing | None) -> Decision[Thing]:
        seen.append(state)
        return Decision(state or Thing(name="new"), [], None)

    await store.execute("N1", create, correlation_id="c", fresh=True)
    assert coll.queries == [] and coll.docs["N1"]["name"] == "new"  # inserted, never read
    coll.docs["N2"] = {"_id": "N2", "name": "there", "version": 0, "rev": 1}  # were the id not new after all
    await store.execute("N2", create, correlation_id="c", fresh=True)
    assert coll.queries == [{"_id": "N2"}]  # the insert failed on the duplicate: read, decided again
    assert seen == [None, None, Thing(name="there")]
