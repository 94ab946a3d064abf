"""Reading topics back from the beginning (or given offsets) to their end as it was when the
read began: the one way the rebuild, the operators' tools, the simulation's verifier, the
bench and the tests read the log. No consumer group: nobody's committed offsets move."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from .bounded import within
from .settings import Settings

START_SECONDS = 30.0
"""How long a reader may take to reach the broker before the read fails."""


@asynccontextmanager
async def topic_reader(settings: Settings, client: str, **options: Any) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer without a group that reads only committed records; ``client``
    names it in the broker's logs (``<namespace>-<client>``)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
                                isolation_level="read_committed", client_id=f"{settings.namespace}-{client}",
                                **options)
    await within(consumer.start(), START_SECONDS, f"the {client} reader starting (Kafka)")
    await asyncio.sleep(0)  # let the consumer's own tasks begin: one cancelled unstarted makes stop() raise
    try:
        yield consumer
    finally:
        await within(consumer.stop(), START_SECONDS, f"the {client} reader stopping (Kafka)")


async def batches_to_end(consumer: AIOKafkaConsumer, parts: list[TopicPartition], *,
                         start: Mapping[TopicPartition, int] | None = None, max_records: int = 10_000,
                         stall_seconds: float = 30.0, timeout: float | None = None) -> AsyncIterator[list[Any]]:
    """Every record of ``parts``, from ``start`` (else each partition's beginning) up to the
    end offsets they had at the call, batch by batch, each partition's in order.

    Fails with TimeoutError naming the partitions short of their end when nothing comes for
    ``stall_seconds``, or when the whole read takes longer than ``timeout``."""
    loop = asyncio.get_running_loop()
    firsts = await consumer.beginning_offsets(parts)
    starts = {tp: max(firsts[tp], (start or {}).get(tp, 0)) for tp in parts}
    ends = {tp: end for tp, end in (await consumer.end_offsets(parts)).items() if end > starts[tp]}
    if not ends:
        return
    consumer.assign(list(ends))
    for tp in ends:
        consumer.seek(tp, starts[tp])
    remaining = set(ends)
    began = last_fetch = loop.time()
    while remaining:
        fetched = await consumer.getmany(*remaining, timeout_ms=1000, max_records=max_records)
        for tp, records in fetched.items():
            kept = [r for r in records if r.offset < ends[tp]]
            if kept:
                yield kept
        for tp in list(remaining):
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
        now = loop.time()
        if fetched:
            last_fetch = now
        if remaining and (now - last_fetch > stall_seconds or (timeout is not None and now - began > timeout)):
            short = [f"{tp.topic}/{tp.partition} at {await consumer.position(tp)} of {ends[tp]}"
                     for tp in sorted(remaining)]
            raise TimeoutError(f"reading the topics back: not at their end after {now - began:.0f} s: {short}")


async def records_to_end(consumer: AIOKafkaConsumer, parts: list[TopicPartition], **options: Any) -> list[Any]:
    """``batches_to_end`` gathered in a list (each partition's records in order, partition
    after partition as fetched): for reads small enough to hold in memory."""
    return [record async for batch in batches_to_end(consumer, parts, **options) for record in batch]
