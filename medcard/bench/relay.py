"""Outbox relay: events/s from committed command to acknowledged publish.

Set-up: with the bank not running, ``n`` merchant registrations are committed to the
bank's database through the bank's own store and domain decision (``AggregateStore.execute``
with ``domain.register_merchant``: the very write the ``POST /v1/merchants`` command
makes), so ``n`` aggregates hold one MerchantRegistered each in their outbox.

Measured: the bank is started; its relay finds the pending aggregates (its start-up
scan, the path that also catches up after a crash or a broker outage), publishes them
with the idempotent producer and clears each outbox after the broker's
acknowledgement. From the first record's producer timestamp until all ``n`` are on the
topic (end offsets polled every 10 ms at first, then every 0.5% of the
elapsed time); the time until no aggregate is pending any more
is in the detail.

Baseline: raw aiokafka with the same idempotent-producer settings (acks=all,
shared.kafka.idempotent_producer) sends the same ``n`` records (key, value, headers read
from the committed outboxes) to a topic of the same partition count, timed from the
first send to the last acknowledgement.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from pymongo import AsyncMongoClient

from services.bank import domain
from services.bank.model import Merchant
from shared.codec import stored_to_record
from shared.database import count_flagged
from shared.kafka import idempotent_producer
from shared.outbox import AggregateStore
from shared.settings import Settings
from shared.topics import TOPICS

from .common import KafkaProbe, Row, gather_limited, new_topic, rate, ratio

GOAL_SHARE = 0.50


async def commit_backlog(settings: Settings, n: int) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """Commit ``n`` merchant registrations with the bank's store; return their records."""
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url, tz_aware=True)
    try:
        coll = mongo[settings.database("bank")]["merchants"]
        store = AggregateStore(coll, service="bank", state_type=Merchant)
        await store.create_indexes()
        correlation = str(uuid.uuid4())

        async def one(i: int) -> None:
            mid = f"MR{i:08d}"
            await store.execute(mid, domain.register_merchant(mid, f"Bench Pharmacy {i}", "pharmacy", True),
                                correlation_id=correlation)

        await gather_limited(range(n), one, 16)
        records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []
        async for doc in coll.find({}, {"outbox": 1}):
            records.extend(stored_to_record(s) for s in doc["outbox"])
        return records
    finally:
        await mongo.close()


async def watch_published(probe: KafkaProbe, topic: str, n: int) -> float:
    """Wall time at which the topic first holds ``n`` records (polled every 10 ms at first,
    then every 0.5% of the time elapsed, at most 0.2 s)."""
    started = time.monotonic()
    while await probe.total(topic) < n:
        await asyncio.sleep(min(0.2, max(0.01, (time.monotonic() - started) / 200)))
    return time.time()


async def first_timestamp(settings: Settings, topic: str) -> float:
    """The smallest producer timestamp among the first record of each partition (epoch s)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(TOPICS["bank"].partitions)]
        ends = await consumer.end_offsets(parts)
        parts = [tp for tp in parts if ends[tp] > 0]
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, 0)
        return float(min([(await consumer.getone(tp)).timestamp for tp in parts])) / 1000
    finally:
        await consumer.stop()


async def pending_cleared(settings: Settings, deadline_s: float = 600.0) -> float:
    """Wall time at which no merchant aggregate is pending any more."""
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url, tz_aware=True)
    try:
        coll = mongo[settings.database("bank")]["merchants"]
        end = time.monotonic() + deadline_s
        while await count_flagged(coll, "pending") and time.monotonic() < end:
            await asyncio.sleep(0.05)
        return time.time()
    finally:
        await mongo.close()


async def baseline(settings: Settings, records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]) -> dict[str, Any]:
    topic = f"{settings.namespace}.bench-relay-baseline"
    producer = idempotent_producer(settings, client_id=f"{settings.namespace}-bench-relay-baseline")
    await producer.start()
    try:
        await new_topic(settings, topic, TOPICS["bank"].partitions, producer)
        started = time.perf_counter()
        futures = [await producer.send(topic, value, key=key, headers=headers) for key, value, headers in records]
        await asyncio.gather(*futures)
        seconds = time.perf_counter() - started
    finally:
        await producer.stop()
    return {"events": len(records), "seconds": round(seconds, 2), "rate": rate(len(records), seconds)}


def result(n: int, first: float, published: float, cleared: float) -> dict[str, Any]:
    seconds = published - first
    return {"events": n, "seconds": round(seconds, 2), "rate": rate(n, seconds),
            "outboxes_cleared_after_s": round(cleared - first, 2)}


def rows(n: int, relay: dict[str, Any], base: dict[str, Any]) -> list[Row]:
    share = ratio(relay["rate"], base["rate"])
    return [Row("relay_rate", f"outbox relay, {n:,} committed commands to acknowledged publish", relay["rate"],
                "events/s", base["rate"], "raw aiokafka idempotent produce, same records", ">= 50% of baseline",
                share is not None and share >= GOAL_SHARE, share, size=n, detail={"bank": relay, "baseline": base})]

