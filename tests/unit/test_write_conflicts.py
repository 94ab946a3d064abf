"""A write the storage aborted for another's locks (a PostgreSQL deadlock, as FerretDB
reports it) is a conflict to try again, never a refusal: the aggregate store applies a
many-aggregate write one by one after it, and consumers retry the batch (no dead letter)."""

from __future__ import annotations

import asyncio
import time
from datetime import date
from typing import Any

from pymongo import InsertOne, UpdateMany, UpdateOne
from pymongo.errors import BulkWriteError, OperationFailure

from services.bank.model import Account
from shared.database import transient, write_conflict
from shared.domain import Decision
from shared.events import MonthEnded, new_event
from shared.outbox import AggregateStore
from tests.unit.memory_collection import BulkResult, MemoryCollection

DEADLOCK = {"index": 0, "code": 16908292, "errmsg": "deadlock detected"}


def test_a_deadlock_is_a_write_conflict_and_transient_and_a_refusal_is_neither() -> None:
    assert write_conflict(BulkWriteError({"writeErrors": [DEADLOCK, {**DEADLOCK, "index": 3}]}))
    assert write_conflict(OperationFailure("ERROR: could not serialize access due to concurrent update", 1))
    assert transient(BulkWriteError({"writeErrors": [DEADLOCK]}))
    mixed = BulkWriteError({"writeErrors": [DEADLOCK, {"index": 1, "code": 11000, "errmsg": "duplicate key"}]})
    assert not write_conflict(mixed), "a duplicate key among them is a real refusal"
    assert not write_conflict(BulkWriteError({"writeErrors": []}))
    assert not transient(OperationFailure("document too large", 10334))


class DeadlockOnce(MemoryCollection):
    """Its first many-document write applies all but the first update, which PostgreSQL
    aborted as a deadlock victim."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.aborted = False

    async def bulk_write(self, requests: list[InsertOne[dict[str, Any]] | UpdateOne | UpdateMany],
                         ordered: bool = True) -> BulkResult:
        if self.aborted or len(requests) < 2:
            return await super().bulk_write(requests, ordered)
        self.aborted = True
        await super().bulk_write(requests[1:], ordered)
        raise BulkWriteError({"writeErrors": [DEADLOCK], "nInserted": 0, "nModified": len(requests) - 1})


def test_a_month_end_write_that_deadlocks_credits_every_account_once() -> None:
    collection = DeadlockOnce("accounts")
    store: AggregateStore[Account] = AggregateStore(collection, service="bank", state_type=Account)  # type: ignore[arg-type]
    cause = new_event(MonthEnded(month="2026-01", closing_date=date(2026, 1, 31)),
                      source="/medcard/identity", partitionkey="clock", sequence=7, correlationid="c")

    def credit(state: Account | None) -> Decision[Account]:
        assert state is not None
        return Decision(state.model_copy(update={"balance_fen": state.balance_fen + 100}))

    async def run() -> None:
        for k in range(4):
            opened = Account(person_id=f"P{k}")
            await store.execute(f"P{k}", lambda _, a=opened: Decision(a), correlation_id="open")
        docs = await collection.find({}).to_list()
        assert await store.execute_many(docs, credit, correlation_id="c", cause=cause) == 4
        assert collection.aborted
        # Delivered again (a consumer retrying its batch): nothing more.
        assert await store.execute_many(await collection.find({}).to_list(), credit, correlation_id="c",
                                        cause=cause) == 0

    asyncio.run(run())
    assert sorted(d["balance_fen"] for d in collection.docs.values()) == [100, 100, 100, 100]


class FlakyCount:
    """A collection whose server fails the first ``fails`` counts as DocumentDB sometimes does."""

    name = "accounts"

    def __init__(self, fails: int, message: str = "tuple offset out of range: 0") -> None:
        self.fails, self.message, self.asked = fails, message, 0
        self.database = self

    async def command(self, spec: dict[str, Any]) -> dict[str, Any]:
        assert spec == {"count": "accounts", "query": {"pending": True}}
        self.asked += 1
        if self.asked <= self.fails:
            raise OperationFailure(self.message, 1)
        return {"n": 7, "ok": 1.0}


def test_a_count_the_server_fails_with_its_known_glitch_is_asked_again_and_others_are_not() -> None:
    from shared.database import count, read_again

    flaky = FlakyCount(fails=3)
    assert asyncio.run(count(flaky, {"pending": True})) == 7  # type: ignore[arg-type]
    assert flaky.asked == 4
    # The glitch sticks to a backend for seconds: it is asked again for a time, not a number of tries.
    stuck = FlakyCount(fails=10**6)
    started = time.monotonic()
    try:
        asyncio.run(read_again(lambda: stuck.command({"count": "accounts", "query": {"pending": True}}), seconds=0.5))
    except OperationFailure:
        assert 0.3 <= time.monotonic() - started < 1.0
        assert 5 <= stuck.asked <= 7  # 20, 40, 80, 160 ms... between tries
    else:
        raise AssertionError("a count that keeps failing must fail")
    other = FlakyCount(fails=1, message="some other failure")
    try:
        asyncio.run(count(other, {"pending": True}))  # type: ignore[arg-type]
    except OperationFailure:
        assert other.asked == 1
    else:
        raise AssertionError("another failure is not asked again")


class FlakyCursor:
    """A find whose first ``fails`` answers are DocumentDB's glitch; each try is a clone."""

    def __init__(self, fails: int) -> None:
        self.fails, self.tries, self.shape = fails, 0, (0, 0)

    def clone(self) -> FlakyCursor:
        return self

    def limit(self, limit: int) -> FlakyCursor:
        self.shape = (limit, self.shape[1])
        return self

    def batch_size(self, size: int) -> FlakyCursor:
        self.shape = (self.shape[0], size)
        return self

    async def to_list(self) -> list[dict[str, Any]]:
        self.tries += 1
        if self.tries <= self.fails:
            raise OperationFailure("tuple offset out of range: 0", 1)
        return [{"_id": "a"}]


def test_a_read_of_one_batch_the_server_fails_with_its_glitch_is_read_again_from_a_fresh_cursor() -> None:
    from shared.database import one_batch

    cursor = FlakyCursor(fails=2)
    assert asyncio.run(one_batch(cursor, 5)) == [{"_id": "a"}]  # type: ignore[arg-type]
    assert cursor.tries == 3
    assert cursor.shape == (-5, 5)  # one batch of at most 5, no cursor left open on the server


class RacingIndexes:
    """A collection whose first ``races`` index changes fail as replicas starting together
    make them fail (``message``, ``code``); then the partial index is made."""

    def __init__(self, races: int, message: str = "deadlock detected", code: int = 1) -> None:
        self.races, self.message, self.code = races, message, code
        self.calls: list[str] = []
        self.indexes: dict[str, dict[str, Any]] = {"pending_1": {"key": [("pending", 1)]}}

    async def index_information(self) -> dict[str, dict[str, Any]]:
        self.calls.append("information")
        return dict(self.indexes)

    async def drop_index(self, name: str) -> None:
        self.calls.append("drop")
        if len(self.calls) <= self.races * 2:
            raise OperationFailure(self.message, self.code)
        self.indexes.pop(name)

    async def create_index(self, field: str, *, name: str, partialFilterExpression: dict[str, Any]) -> None:
        self.calls.append("create")
        self.indexes[name] = {"key": [(field, 1)], "partialFilterExpression": partialFilterExpression}


def test_a_flag_index_raced_by_another_replica_is_made_again_and_other_failures_are_raised() -> None:
    from shared.database import INDEX_NOT_FOUND, flag_index

    raced = RacingIndexes(races=2)
    asyncio.run(flag_index(raced, "pending"))  # type: ignore[arg-type]
    assert raced.indexes["pending_1"]["partialFilterExpression"] == {"pending": True}
    assert raced.calls == ["information", "drop"] * 3 + ["create"]
    dropped_by_another = RacingIndexes(races=1, message="index not found with name [pending_1]", code=INDEX_NOT_FOUND)
    asyncio.run(flag_index(dropped_by_another, "pending"))  # type: ignore[arg-type]
    assert dropped_by_another.indexes["pending_1"]["partialFilterExpression"] == {"pending": True}
    refused = RacingIndexes(races=1, message="not authorized", code=13)
    try:
        asyncio.run(flag_index(refused, "pending"))  # type: ignore[arg-type]
    except OperationFailure:
        assert refused.calls == ["information", "drop"]
    else:
        raise AssertionError("a failure that is not a race is raised at once")
