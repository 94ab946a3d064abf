"""Rebuilding a service's projections from the event log.

A projection is what a service derives from other services' events alone (not from its own
commands): its collections, the topics that feed them and how one event changes them. Each
service lists its projections in ``services/<name>/projections.py``, and its consumer applies
events with those very functions, so a rebuild runs the same code as the live service.

:func:`rebuild` reads the feeding topics from their first offset up to the end they had when
it started (topics are kept forever), applies every event in partition order to the same
collections in another database, and skips a record the live consumer would dead-letter.
:func:`compare` lists where two databases' copies of the projections differ.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from .codec import from_record
from .database import database_away, mongo_client
from .projection import Projection
from .settings import Settings
from .topic_reader import batches_to_end, topic_reader
from .topics import TOPICS

Doc = dict[str, Any]
STALL_SECONDS = 60.0
"""Longest reading a topic back may go without getting any nearer its end (Kafka away)."""
class RebuildError(Exception):
    """The rebuild cannot be done as asked (a target that already holds data...)."""


@dataclass
class RebuildReport:
    database: str
    records: int = 0
    """Records read from the topics."""
    fed: dict[str, int] = field(default_factory=dict)
    """Projection -> events given to it (it ignores those it does not project)."""
    skipped: list[str] = field(default_factory=list)
    """Records the live consumer dead-letters (they do not parse, or applying them failed)."""
    documents: dict[str, int] = field(default_factory=dict)
    """Collection -> documents in the rebuilt database."""


async def rebuild(settings: Settings, projections: list[Projection], into: str, *,
                  replace: bool = False) -> RebuildReport:
    """Rebuild ``projections`` from the topics into database ``into`` (empty, or ``replace``)."""
    client = _client(settings)
    try:
        target = client[into]
        collections = [c for p in projections for c in p.collections]
        for name in collections:
            if replace:
                await target[name].drop()
            elif await target[name].count_documents({}, limit=1):
                raise RebuildError(f"collection {name} of database {into} is not empty (rebuild into a fresh "
                                   "database, or replace it)")
        report = RebuildReport(database=into, fed={p.name: 0 for p in projections})
        for service in sorted({s for p in projections for s in p.sources}):
            feeds = [p for p in projections if service in p.sources]
            async with aclosing(records(settings, service)) as stream:
                async for record in stream:
                    await _apply(record, feeds, target, report)
        for name in collections:
            report.documents[name] = await target[name].count_documents({})
        return report
    finally:
        await client.close()


def _client(settings: Settings) -> AsyncMongoClient[Doc]:
    """pymongo's patient server selection (a rebuild is not a request), no answer awaited for ever."""
    return mongo_client(settings.mongo_url, serverSelectionTimeoutMS=30_000, connectTimeoutMS=20_000)


async def _apply(record: Any, feeds: list[Projection], target: AsyncDatabase[Doc], report: RebuildReport) -> None:
    report.records += 1
    place = f"{record.topic}/{record.partition}@{record.offset}"
    try:
        event = from_record(record)
    except Exception as err:  # the live consumer dead-letters it
        report.skipped.append(f"{place}: unparseable: {err}")
        return
    for projection in feeds:
        try:
            await projection.apply(target, event)
        except Exception as err:
            if database_away(err):
                raise  # the database is gone: the rebuild stops, nothing is skipped
            # what the live consumer dead-letters
            report.skipped.append(f"{place}: {type(err).__name__}: {err}")
            continue
        report.fed[projection.name] += 1


async def compare(settings: Settings, projections: list[Projection], live: str, other: str,
                  *, limit: int = 20) -> list[str]:
    """Where the projections' collections differ between two databases (empty: identical)."""
    client = _client(settings)
    differences: list[str] = []
    try:
        for name in (c for p in projections for c in p.collections):
            a = {d["_id"]: d for d in await client[live][name].find({}).to_list()}
            b = {d["_id"]: d for d in await client[other][name].find({}).to_list()}
            for key in sorted(a.keys() | b.keys(), key=str):
                if key not in b:
                    differences.append(f"{name} {key}: only in {live}")
                elif key not in a:
                    differences.append(f"{name} {key}: only in {other}")
                elif a[key] != b[key]:
                    differences.append(f"{name} {key}: {a[key]!r} != {b[key]!r}")
                if len(differences) >= limit:
                    return differences
    finally:
        await client.close()
    return differences


async def records(settings: Settings, service: str) -> AsyncGenerator[Any, None]:
    """Every record of a service's topic, in order within each partition, up to the end offsets
    it had at the call (no consumer group: the services' offsets are never touched)."""
    topic = TOPICS[service]
    parts = [TopicPartition(topic.name(settings.namespace), p) for p in range(topic.partitions)]
    async with topic_reader(settings, "rebuild") as consumer:
        async for batch in batches_to_end(consumer, parts, max_records=1000, stall_seconds=STALL_SECONDS):
            for record in batch:
                yield record
