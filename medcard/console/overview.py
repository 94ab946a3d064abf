"""The operators' first screen, as server-sent events: every few seconds a snapshot of how
many records each service's topic holds (the page turns two snapshots into events per
second), each service group's consumer lag, how many dead letters wait, and whether each
service answers ``/ready``. Kafka and the services are asked, never the databases."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import BaseModel, Field

from medcard.ops.lag import SERVICES, group_lag
from medcard.ops.reader import admin_client, partitions
from shared.domain import DomainError
from shared.kafka import TRANSIENT_KAFKA_ERRORS
from shared.settings import Settings
from shared.topics import TOPICS

from .stream import sse

HEALTH_TIMEOUT_SECONDS = 1.0
RETRY_SECONDS = 3.0


class Snapshot(BaseModel):
    at: datetime = Field(description="When the snapshot was taken (UTC)")
    topics: dict[str, int] = Field(description="Service -> records its topic holds (end offsets summed)")
    dead_letters: dict[str, int] = Field(description="Service -> records in its dead-letter topic")
    lag: dict[str, int] = Field(description="Service -> its consumer group's total lag")
    health: dict[str, str] = Field(description="Service -> ready, not ready (its /ready said 503) or down")


async def _records(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[str, int]:
    """Records each topic holds: end minus beginning offsets, summed over its partitions."""
    if not tps:
        return {}
    ends, firsts = await consumer.end_offsets(tps), await consumer.beginning_offsets(tps)
    held: dict[str, int] = {}
    for tp in tps:
        held[tp.topic] = held.get(tp.topic, 0) + ends[tp] - firsts[tp]
    return held


async def _health(http: httpx.AsyncClient, urls: dict[str, str]) -> dict[str, str]:
    async def one(url: str) -> str:
        try:
            answer = await http.get(f"{url}/ready", timeout=HEALTH_TIMEOUT_SECONDS)
        except httpx.HTTPError:
            return "down"
        return "ready" if answer.status_code == 200 else "not ready"

    names = [s for s in SERVICES if s in urls]
    return dict(zip(names, await asyncio.gather(*(one(urls[s]) for s in names)), strict=True))


async def snapshot(settings: Settings, admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer,
                   http: httpx.AsyncClient, urls: dict[str, str]) -> Snapshot:
    """One look at the topics, the groups and the services."""
    names = {s: t.name(settings.namespace) for s, t in TOPICS.items()}
    dlqs = {s: t.dlq(settings.namespace) for s, t in TOPICS.items()}
    tps = await partitions(admin, [*names.values(), *dlqs.values()], missing_ok=True)
    held = await _records(consumer, tps)
    lags = [await group_lag(admin, consumer, s, settings.group_id(s)) for s in SERVICES]
    return Snapshot(at=datetime.now(UTC), topics={s: held.get(t, 0) for s, t in names.items()},
                    dead_letters={s: held.get(t, 0) for s, t in dlqs.items()},
                    lag={g.service: g.lag for g in lags}, health=await _health(http, urls))


async def overview_stream(settings: Settings, urls: dict[str, str], every: float) -> AsyncIterator[str]:
    """A ``snapshot`` event every ``every`` seconds until the client leaves; while Kafka does
    not answer, a ``failure`` event and a new try a few seconds later."""
    async with httpx.AsyncClient() as http:
        while True:
            try:
                async with admin_client(settings) as admin:
                    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                                enable_auto_commit=False,
                                                client_id=f"{settings.namespace}-ops-overview")
                    await consumer.start()
                    try:
                        while True:
                            shot = await snapshot(settings, admin, consumer, http, urls)
                            yield sse(shot.model_dump_json(), event="snapshot")
                            await asyncio.sleep(every)
                    finally:
                        await consumer.stop()
            except DomainError as err:
                yield sse(json.dumps({"error": err.code, "detail": err.message}), event="failure")
            except TRANSIENT_KAFKA_ERRORS as err:
                yield sse(json.dumps({"error": "kafka_unavailable", "detail": repr(err)}), event="failure")
            await asyncio.sleep(RETRY_SECONDS)
