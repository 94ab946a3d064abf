"""Projection apply rate and month-end transfer, at a given number of accounts.

Set-up (not measured): on a fresh namespace, ``n`` CardIssued events (cards topic) and
``n`` ContributionPaid events (identity topic) for ``n`` persons are produced straight to
Kafka with the shared event models and codec, as the cards and identity services would
publish them. Nothing consumes them yet.

Projection apply rate: the bank (with identity, which owns the clock) is then started;
its consumer group works through the ``2n`` events: each CardIssued opens a personal
account (a document, plus AccountOpened in its outbox, published by the relay), each
ContributionPaid records a contribution due at the month end. From the first event the
bank wrote (the smallest ``ce_time`` on its topic) until its group's lag is 0 (polled
every 50 ms at first, then every 1% of the elapsed time). Baseline: a raw aiokafka consumer (own group) reads the same ``2n``
records in batches of 500 and upserts the same account documents with one ordered
``bulk_write`` per batch (JSON decoding only, no validation, no domain logic), timed
from its first batch to its last write.

Month-end transfer: the operator advances the business clock over the month end
(``POST /v1/clock/advance`` on identity); the bank's clock consumer credits every
account and the relay publishes one MonthlyTransfer each. From just before that request
until a reader of the bank topic has seen all ``n`` MonthlyTransfer events. Baseline:
raw ``bulk_write`` upserts crediting the ``n`` baseline documents, batches of 1,000.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from pymongo import AsyncMongoClient, UpdateOne

from medcard.simulate.client import Ecosystem
from shared.codec import to_record
from shared.events import CardIssued, ContributionPaid, new_event
from shared.ids import CARD_BIN, luhn_check_digit
from shared.kafka import idempotent_producer
from shared.settings import Settings
from shared.topics import partitions_of, topic_for_service

from .common import KafkaProbe, Row, ratio, rate

MONTH = "2026-01"
AMOUNT_FEN = 12_345
GOAL_SHARE = 0.50
BASELINE_BATCH = 500
MONTH_END_BATCH = 1000


def person_id(i: int) -> str:
    return f"P{i:016x}"


def card_number(i: int) -> str:
    payload = CARD_BIN + f"{i:012d}"
    return payload + luhn_check_digit(payload)


async def produce_backlog(settings: Settings, n: int) -> dict[str, Any]:
    """``n`` CardIssued and ``n`` ContributionPaid, as the cards and identity services publish them."""
    cards_topic = topic_for_service("cards", settings.namespace)
    identity_topic = topic_for_service("identity", settings.namespace)
    correlation = str(uuid.uuid4())
    producer = idempotent_producer(settings, client_id=f"{settings.namespace}-bench-backlog")
    await producer.start()
    started = time.perf_counter()
    try:
        futures: list[Any] = []
        for i in range(n):
            pid = person_id(i)
            issued = new_event(CardIssued(person_id=pid, card_number=card_number(i), agent_bank="Bench Bank"),
                               source="/medcard/cards", partitionkey=pid, sequence=1, correlationid=correlation,
                               subject=card_number(i))
            paid = new_event(ContributionPaid(contribution_id=f"C{MONTH.replace('-', '')}{pid}", person_id=pid,
                                              unit_id="UBENCH", month=MONTH, amount_fen=AMOUNT_FEN),
                             source="/medcard/identity", partitionkey=pid, sequence=2, correlationid=correlation)
            for topic, event in ((cards_topic, issued), (identity_topic, paid)):
                key, value, headers = to_record(event)
                futures.append(await producer.send(topic, value, key=key, headers=headers))
            if len(futures) >= 20_000:
                await asyncio.gather(*futures)
                futures = []
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return {"events": 2 * n, "seconds": round(time.perf_counter() - started, 2)}


async def first_event_time(settings: Settings, topic: str) -> float | None:
    """The smallest ``ce_time`` among the first record of each partition (epoch seconds)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(partitions_of(topic, settings.namespace))]
        ends = await consumer.end_offsets(parts)
        parts = [tp for tp in parts if ends[tp] > 0]
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, 0)
        times: list[float] = []
        for tp in parts:
            record = await consumer.getone(tp)
            headers = {k: v.decode() for k, v in record.headers or ()}
            times.append(datetime.fromisoformat(headers["ce_time"]).timestamp())
        return min(times) if times else None
    finally:
        await consumer.stop()


async def watch_lag(probe: KafkaProbe, group: str, topics: list[str], target_done: asyncio.Event,
                    samples: list[tuple[float, int]]) -> None:
    """Poll the group's lag; set ``target_done`` at the first sample with lag 0.

    Every 50 ms at first, then every 1% of the time elapsed (at most 0.5 s): the error
    stays under about 1% while the broker is not kept busy answering the watcher."""
    started = time.monotonic()
    while True:
        lag = await probe.lag(group, topics)
        samples.append((time.time(), lag))
        if lag == 0:
            target_done.set()
            return
        await asyncio.sleep(min(0.5, max(0.05, (time.monotonic() - started) / 100)))


def projection_result(n: int, first_write: float | None, samples: list[tuple[float, int]]) -> dict[str, Any]:
    events = 2 * n
    done_at = samples[-1][0]
    progressed = next((t for t, lag in samples if lag < events), done_at)
    start = min(x for x in (first_write, progressed) if x is not None)
    seconds = done_at - start
    return {"events": events, "seconds": round(seconds, 2), "rate": rate(events, seconds),
            "first_write_epoch": first_write, "lag_samples": len(samples)}


async def baseline_projection(settings: Settings, n: int) -> dict[str, Any]:
    """Raw aiokafka batch consume + one ordered bulk_write of upserts per batch."""
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url, tz_aware=True)
    coll = mongo[f"{settings.namespace}_benchbase"]["accounts"]
    topics = [topic_for_service("cards", settings.namespace), topic_for_service("identity", settings.namespace)]
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=settings.kafka_bootstrap,
                                group_id=f"{settings.namespace}.bench-baseline", enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level="read_committed")
    await consumer.start()
    seen = 0
    first: float | None = None
    try:
        ends = await consumer.end_offsets([TopicPartition(t, p) for t in topics
                                           for p in range(partitions_of(t, settings.namespace))])
        total = sum(ends.values())  # 2n, and what identity published itself (its operator)
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=BASELINE_BATCH)
            if not batches:
                continue
            if first is None:
                first = time.perf_counter()
            ops = []
            for records in batches.values():
                for r in records:
                    headers = {k: v.decode() for k, v in r.headers or ()}
                    data = json.loads(r.value or b"{}")
                    seen += 1
                    if "person_id" not in data:
                        continue  # identity's own StaffUserCreated (the bootstrap operator)
                    pid, kind = data["person_id"], headers["ce_type"].split(".")[-2]
                    seq = {f"seq.{headers['ce_source'].rsplit('/', 1)[-1]}:{pid}": int(headers["ce_sequence"])}
                    if kind == "CardIssued":
                        ops.append(UpdateOne({"_id": pid}, {
                            "$set": {"person_id": pid, "account_id": f"PMA-{pid}", "current_card": data["card_number"],
                                     "balance_fen": 0, **seq},
                            "$push": {"cards": {"number": data["card_number"], "status": "active",
                                                "blocked_at": None}}}, upsert=True))
                    else:
                        ops.append(UpdateOne({"_id": pid}, {
                            "$set": {"person_id": pid, "credit_due_from": data["month"], **seq},
                            "$push": {"contributions": {"contribution_id": data["contribution_id"],
                                                        "month": data["month"], "amount_fen": data["amount_fen"],
                                                        "credited": False}}}, upsert=True))
            if ops:
                await coll.bulk_write(ops, ordered=True)
            await consumer.commit()
        assert first is not None
        seconds = time.perf_counter() - first
        return {"events": seen, "seconds": round(seconds, 2), "rate": rate(seen, seconds),
                "documents": await coll.estimated_document_count()}
    finally:
        await consumer.stop()
        await mongo.close()


async def month_end(eco: Ecosystem, probe: KafkaProbe, settings: Settings, n: int) -> dict[str, Any]:
    """Advance the clock over the month end; wait until ``n`` MonthlyTransfer are on the bank topic."""
    topic = topic_for_service("bank", settings.namespace)
    start = await probe.end_offsets(topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        t0 = time.perf_counter()
        answer = await eco.call("identity", "POST", "/v1/clock/advance", who="operator", json={"days": 1})
        answered = time.perf_counter()
        seen, first_seen = 0, None
        while seen < n:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batches.values():
                for r in records:
                    if any(k == "ce_type" and b".MonthlyTransfer." in v for k, v in r.headers or ()):
                        seen += 1
                        if first_seen is None:
                            first_seen = time.perf_counter()
            if time.perf_counter() - t0 > 3600:
                raise TimeoutError(f"only {seen} of {n} MonthlyTransfer after an hour")
        t1 = time.perf_counter()
    finally:
        await consumer.stop()
    return {"accounts": n, "seconds": round(t1 - t0, 2), "rate": rate(n, t1 - t0),
            "months_ended": answer["months_ended"], "advance_answer_ms": round((answered - t0) * 1000, 1),
            "first_transfer_after_s": round((first_seen or t1) - t0, 2)}


async def baseline_month_end(settings: Settings, n: int) -> dict[str, Any]:
    """Raw bulk_write upserts crediting the ``n`` baseline documents."""
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url, tz_aware=True)
    coll = mongo[f"{settings.namespace}_benchbase"]["accounts"]
    try:
        started = time.perf_counter()
        for chunk in range(0, n, MONTH_END_BATCH):
            ops = []
            for i in range(chunk, min(n, chunk + MONTH_END_BATCH)):
                pid = person_id(i)
                ops.append(UpdateOne({"_id": pid}, {
                    "$inc": {"balance_fen": AMOUNT_FEN},
                    "$set": {"contributions": [], "credit_due_from": None},  # credited, it leaves (as the bank)
                    "$push": {"ledger": {"reference": f"C{MONTH.replace('-', '')}{pid}", "kind": "credit",
                                         "amount_fen": AMOUNT_FEN, "business_date": "2026-01-31",
                                         "card_number": card_number(i)}}}, upsert=True))
            await coll.bulk_write(ops, ordered=False)
        seconds = time.perf_counter() - started
        return {"documents": n, "seconds": round(seconds, 2), "rate": rate(n, seconds)}
    finally:
        await mongo.close()


def rows(n: int, projection: dict[str, Any], base_projection: dict[str, Any], transfer: dict[str, Any] | None,
         base_transfer: dict[str, Any] | None) -> list[Row]:
    share = ratio(projection["rate"], base_projection["rate"])
    out = [Row(f"projection_rate@{n}", f"projection apply rate, bank, {n:,} accounts ({2 * n:,} events)",
               projection["rate"], "events/s", base_projection["rate"],
               "raw aiokafka batch consume + bulk_write upserts", ">= 50% of baseline",
               share is not None and share >= GOAL_SHARE, share, size=n,
               detail={"bank": projection, "baseline": base_projection})]
    if transfer is not None and base_transfer is not None:
        share = ratio(transfer["rate"], base_transfer["rate"])
        out.append(Row(f"month_end_rate@{n}", f"month-end transfer, {n:,} accounts, credited/s end to end",
                       transfer["rate"], "accounts/s", base_transfer["rate"], "raw bulk_write upserts",
                       ">= 50% of baseline", share is not None and share >= GOAL_SHARE, share, size=n,
                       detail={"bank": transfer, "baseline": base_transfer}))
    return out
