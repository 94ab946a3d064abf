"""Group-less Kafka reading: partitions are assigned by hand and nothing is ever committed,
so the operators' tools never disturb the services' consumer groups."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.domain import NotFound
from shared.settings import Settings
from shared.topic_reader import records_to_end, topic_reader

from .filters import Start

Record: TypeAlias = ConsumerRecord[bytes, bytes]


async def partitions(admin: AIOKafkaAdminClient, topics: list[str], *,
                     missing_ok: bool = False) -> list[TopicPartition]:
    """Every partition of the topics (in order); a topic that does not exist is an error unless ``missing_ok``."""
    existing = set(await admin.list_topics())
    absent = [t for t in topics if t not in existing]
    if absent and not missing_ok:
        raise NotFound(f"no such topic: {', '.join(absent)} (create them with: medcard topics create)")
    present = [t for t in topics if t in existing]
    described = {d["topic"]: d for d in await admin.describe_topics(present)} if present else {}
    return [TopicPartition(t, p) for t in present for p in sorted(q["partition"] for q in described[t]["partitions"])]


@asynccontextmanager
async def admin_client(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=10_000,
                                client_id=f"{settings.namespace}-ops-admin")
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


@asynccontextmanager
async def reader(settings: Settings, topics: list[str], *, missing_ok: bool = False) -> AsyncIterator[
        tuple[AIOKafkaConsumer, list[TopicPartition]]]:
    """A started consumer without group, assigned every partition of the topics that exist."""
    async with admin_client(settings) as admin:
        tps = await partitions(admin, topics, missing_ok=missing_ok)
    async with topic_reader(settings, "ops", auto_offset_reset="earliest") as consumer:
        consumer.assign(tps)
        yield consumer, tps


async def seek(consumer: AIOKafkaConsumer, tps: list[TopicPartition], start: Start) -> None:
    """Position every partition at its start, its end, or the first record at or after a time.

    Offsets are looked up first and then set with the synchronous ``seek``: a ``seek_to_*``
    request can lose a race with the reset the consumer starts on its own at assignment.
    """
    if not tps:
        return
    if start == "start":
        offsets = await consumer.beginning_offsets(tps)
    else:
        offsets = await consumer.end_offsets(tps)
        if isinstance(start, datetime):
            found = await consumer.offsets_for_times({tp: int(start.timestamp() * 1000) for tp in tps})
            offsets.update({tp: hit.offset for tp, hit in found.items() if hit is not None})
    for tp in tps:
        consumer.seek(tp, offsets[tp])


async def poll(consumer: AIOKafkaConsumer, timeout: float) -> list[Record]:
    """One fetch from all assigned partitions, in record-timestamp order."""
    batches = await consumer.getmany(timeout_ms=int(timeout * 1000))
    records = [r for recs in batches.values() for r in recs]
    return sorted(records, key=lambda r: (r.timestamp, r.topic, r.partition, r.offset))


async def read_to_end(settings: Settings, topics: list[str], *, missing_ok: bool = False,
                      timeout: float = 60.0) -> list[Record]:
    """Every record of the topics, from the beginning to their end as it was when called."""
    async with reader(settings, topics, missing_ok=missing_ok) as (consumer, tps):
        if not tps:
            return []
        return await records_to_end(consumer, tps, stall_seconds=timeout, timeout=timeout)
