"""The database client's bounds, and which database errors mean "the database is away":
retried by consumers, answered 503 by the APIs, never dead-lettered or reported as a bug.

Besides losing the connection, a server that is stopping fails the operations in flight:
MongoDB with a shutdown or step-down code. FerretDB answers code 1 with PostgreSQL's
words when the PostgreSQL behind it is away: "failed to connect to `user=postgres ...`:
dial error ... connection refused" while it is down, "terminating connection due to
administrator command" when it stops under a write (both seen here, stopping PostgreSQL
under 8 writers), "the database system is starting up" or "shutting down" around a
restart, and "context canceled" for a request cut short by its own shutdown.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.errors import BulkWriteError, ConnectionFailure, ExecutionTimeout, OperationFailure, WriteError

from .mongo_waits import make_condition_waits_safe

T = TypeVar("T")

make_condition_waits_safe()  # before any client waits: see shared/mongo_waits.py

Doc = dict[str, Any]

STOPPING_CODES = frozenset({
    91,     # ShutdownInProgress
    189,    # PrimarySteppedDown
    10107,  # NotWritablePrimary
    11600,  # InterruptedAtShutdown
    11602,  # InterruptedDueToReplStateChange
    13435,  # NotPrimaryNoSecondaryOk
    13436,  # NotPrimaryOrSecondary
})
AWAY_WORDS = (
    "context canceled",                                   # FerretDB's request cut short
    "failed to connect to",                               # PostgreSQL unreachable (pgx)
    "terminating connection due to administrator command",  # PostgreSQL stopping (57P01)
    "the database system is starting up",                 # 57P03
    "the database system is shutting down",               # 57P03
    "the database system is in recovery mode",            # 57P03
    "conn closed",                                        # a pooled connection PostgreSQL dropped
)
"""What FerretDB's code-1 answers say when the storage behind it is away, not the request wrong."""
CONFLICT_WORDS = (
    "deadlock detected",            # PostgreSQL 40P01: two writes locked rows in opposite orders
    "could not serialize access",   # PostgreSQL 40001
)
"""What FerretDB says when PostgreSQL aborted a write because another write held what it
needed (seen here: a month end's bulk credit and a batch of contributions on the same
accounts at once). Nothing of the aborted write was applied; the same write again succeeds."""
ANSWER_SECONDS = 60.0
"""Longest the client waits for the server's answer to one request (``socketTimeoutMS``):
a server that stalls fails the operation with ``NetworkTimeout``, which is an outage
(retried, 503), instead of holding its caller for ever (pymongo's default). Client-side
only: nothing is added to the commands sent (unlike ``timeoutMS``, whose ``maxTimeMS``
the server would have to honour)."""


def mongo_client(url: str, **options: Any) -> AsyncMongoClient[dict[str, Any]]:
    """A client as the services use it: times in UTC, a server found (or a connection made)
    within 3 s, no answer awaited longer than ``ANSWER_SECONDS``; ``options`` override."""
    defaults: dict[str, Any] = {"serverSelectionTimeoutMS": 3000, "connectTimeoutMS": 3000,
                                "socketTimeoutMS": int(ANSWER_SECONDS * 1000), "tz_aware": True}
    return AsyncMongoClient(url, **{**defaults, **options})


async def holds_any(collection: AsyncCollection[Doc]) -> bool:
    """Whether ``collection`` holds a document: a store of before, read beside the one that
    replaced it, is read only while it holds something (one key read, by the primary key)."""
    return await collection.find_one({}, {"_id": 1}) is not None


async def one_batch(cursor: AsyncCursor[Doc], limit: int) -> list[Doc]:
    """The first ``limit`` documents of ``cursor``, answered in one batch (a batch stops at
    16 MiB: a caller that must see everything pages on from the last document); a read that
    DocumentDB fails with "tuple offset out of range" is asked again (``read_again``).

    DocumentDB answers a read that may take more than one batch and has a limit or a sort
    with a cursor that holds its PostgreSQL connection; FerretDB takes that connection out
    of its pool and closes it once the cursor is drained, often at once: PostgreSQL starts
    a new backend for nearly every such read (6-20 ms each, measured; a 1,000-person
    simulation started 24 a second). A single batch needs no cursor and keeps the
    connection. (DocumentDB's file-based cursors would also keep it, but they crashed
    PostgreSQL, signal 11, under concurrent counts and writes.) A read of every match needs
    neither: it is sorted by the caller, not the server (the webhook sender's read of the
    subscriptions, sorted by the server, cost a backend three times a second)."""
    # Without the batch size, a first batch is 101 documents.
    return await read_again(lambda: cursor.clone().limit(-limit).batch_size(limit).to_list())


DUPLICATE_KEY = 11000
INDEX_NOT_FOUND = 27


async def insert_new(collection: AsyncCollection[Doc], docs: list[Doc]) -> None:
    """``docs`` inserted by one ``insert_many``; those whose ``_id`` is already there (a
    redelivery, a step done again) are left as they are. Any other error is raised."""
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as err:
        if any(e.get("code") != DUPLICATE_KEY for e in err.details.get("writeErrors", ())) or \
                err.details.get("writeConcernErrors"):
            raise


INDEX_RACE_SECONDS = 3.0
"""How long ``partial_index`` (and so ``flag_index``) tries again when replicas starting together race on the index."""


def _raced_on_index(err: OperationFailure) -> bool:
    """Replicas starting together: one may drop what another just dropped or made, and
    PostgreSQL may end one of two index changes as a deadlock."""
    return err.code == INDEX_NOT_FOUND or "deadlock detected" in str(err)


def flag_hint(field: str) -> str:
    """The name of ``flag_index(collection, field)``, to ``hint`` the reads of ``{field: True}``
    with: DocumentDB's planner has no statistics of a field inside the document and guesses
    that a flag is true in half of them, so it reads the whole table instead of the partial
    index (the relay's scan of 2.8 million messages: 19 s, against 0.2 s by the index)."""
    return f"{field}_1"


def find_flagged(collection: AsyncCollection[Doc], field: str, projection: Any = None, *,
                 also: dict[str, Any] | None = None, **kwargs: Any) -> AsyncCursor[Doc]:
    """The documents whose ``field`` is true (and that match ``also``), read by
    ``flag_index``'s partial index, named (``flag_hint``): every read of a flag goes here."""
    return collection.find({field: True, **(also or {})}, projection, **kwargs).hint(flag_hint(field))


async def count_flagged(collection: AsyncCollection[Doc], field: str) -> int:
    """How many documents have ``field`` true, counted by ``flag_index``'s partial index."""
    return await count(collection, {field: True}, hint=flag_hint(field))


async def flag_index(collection: AsyncCollection[Doc], field: str) -> None:
    """An index of the documents whose ``field`` is true, for the reads of ``{field: True}``
    (``field_1``, partial): the documents where it is false have no entry. DocumentDB writes
    every changed document as a new PostgreSQL row version with an entry in each index of
    its collection, so a full index of a flag costs every write of every document; a
    partial one only the writes of flagged documents. The relay's outbox flag: 23% less
    PostgreSQL CPU per write of an outbox cycle (229 against 300 µs, 48,000 writes on a
    collection of three indexes, measured here). A full index of before is replaced."""
    await partial_index(collection, [(field, 1)], name=flag_hint(field), when={field: True})


async def partial_index(collection: AsyncCollection[Doc], keys: list[tuple[str, int]], *, name: str,
                        when: dict[str, Any], replaces: str | None = None) -> None:
    """An index ``name`` of ``keys`` over the documents that match ``when`` only (partial:
    an equality, the form DocumentDB accepts), used by the reads whose filter includes
    ``when``; see ``flag_index`` for why. An index of that name made otherwise, and the
    index ``replaces`` (the full one of before), are dropped first."""

    async def make() -> None:
        present = await collection.index_information()
        spec = present.get(name)
        if spec is not None and spec.get("partialFilterExpression") != when:
            await collection.drop_index(name)
        if replaces is not None and replaces in present:
            await collection.drop_index(replaces)
        await collection.create_index(keys, name=name, partialFilterExpression=when)
    await ask_again(make, when=_raced_on_index, seconds=INDEX_RACE_SECONDS)


async def drop_index(collection: AsyncCollection[Doc], name: str) -> None:
    """Drop the index ``name`` of ``collection`` if it is there: an index no read uses any
    more still costs an entry on every write of every document (see ``flag_index``). A
    replica starting beside that dropped it first is no error."""
    if name not in await collection.index_information():
        return
    try:
        await collection.drop_index(name)
    except OperationFailure as err:
        if err.code != INDEX_NOT_FOUND:
            raise


async def ask_again(action: Callable[[], Awaitable[T]], *, when: Callable[[OperationFailure], bool],
                    seconds: float) -> T:
    """``action()``, done again (the waits doubling from 20 ms to 1 s) for at most
    ``seconds`` while it fails with an OperationFailure that ``when`` accepts; any other
    error, or an accepted one past ``seconds``, is raised."""
    deadline = time.monotonic() + seconds
    delay = 0.02
    while True:
        try:
            return await action()
        except OperationFailure as err:
            if not when(err) or time.monotonic() + delay > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


READ_AGAIN_SECONDS = 10.0
"""How long a read that DocumentDB failed with "tuple offset out of range" is asked again."""


def _tuple_offset(err: OperationFailure) -> bool:
    return "tuple offset out of range" in str(err)


async def read_again(read: Callable[[], Awaitable[T]], seconds: float = READ_AGAIN_SECONDS) -> T:
    """``read()``, asked again (``ask_again``) for at most ``seconds`` while DocumentDB
    (0.106) fails it with "tuple offset out of range": now and then a count or a find over
    an index that concurrent writes are changing fails so, and the error sticks to the
    PostgreSQL backend that met it for seconds (36 failures from one backend in 7 s, day
    183 of the 100,000-person simulation: six tries in 0.6 s were not enough)."""
    return await ask_again(read, when=_tuple_offset, seconds=seconds)


async def count(collection: AsyncCollection[Doc], query: dict[str, Any], hint: str | None = None) -> int:
    """How many documents match ``query``, by the ``count`` command: ``count_documents``
    runs an aggregation, which costs a PostgreSQL backend as a cursor does (``one_batch``).
    ``hint``: the index to count by (``flag_hint``). Asked again on DocumentDB's transient
    "tuple offset out of range" (``read_again``)."""
    async def ask() -> int:
        spec: dict[str, Any] = {"count": collection.name, "query": query}
        if hint:
            spec["hint"] = hint
        answer = await collection.database.command(spec)
        return int(answer["n"])
    return await read_again(ask)


def database_away(err: BaseException) -> bool:
    """True when ``err`` says the database could not be reached or is stopping (try again
    later), False for what a retry cannot mend (a refused write, a bad query, a bug)."""
    if isinstance(err, (ConnectionFailure, ExecutionTimeout)):
        return True
    if isinstance(err, OperationFailure) and not isinstance(err, WriteError):
        return err.code in STOPPING_CODES or (err.code == 1 and any(words in str(err) for words in AWAY_WORDS))
    return False


def write_conflict(err: BaseException) -> bool:
    """True when ``err`` is a write the storage aborted for another write's locks (a
    deadlock): nothing was applied, and trying again mends it. For a bulk write, true when
    every refused operation was aborted so (the others were applied)."""
    if isinstance(err, BulkWriteError):
        refused = err.details.get("writeErrors") or []
        return bool(refused) and all(any(w in str(e.get("errmsg", "")) for w in CONFLICT_WORDS) for e in refused)
    return isinstance(err, OperationFailure) and any(words in str(err) for words in CONFLICT_WORDS)


def transient(err: BaseException) -> bool:
    """The database is away, or aborted the write for another's: try the same again later."""
    return database_away(err) or write_conflict(err)

