"""Test helpers: read a topic from the start, wait for a condition."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from fastapi import FastAPI

from shared.auth import Role, issue_token
from shared.settings import Settings
from shared.topics import topic_for_service


async def read_topic(
    settings: Settings, topic: str, *, until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout: float = 20.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read a topic from the beginning with a throwaway group until ``until(records)``."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap, group_id=f"reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest", enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while not until(records):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out reading {topic}: {len(records)} records")
            batch = await consumer.getmany(timeout_ms=300)
            for recs in batch.values():
                records.extend(recs)
        return records
    finally:
        await consumer.stop()


async def read_service_topic(settings: Settings, service: str, count: int, timeout: float = 20.0) -> list[Any]:
    return await read_topic(settings, topic_for_service(service, settings.namespace),
                            until=lambda r: len(r) >= count, timeout=timeout)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running_service(create: Callable[[Settings], FastAPI], settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Run a service app in this process (lifespan included) against the real servers,
    wait until it is ready, and yield an HTTP client bound to it."""
    app = create(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            async def ready() -> bool:
                return (await client.get("/ready")).status_code == 200
            await eventually(ready, timeout=60)
            yield client


def auth(settings: Settings, role: Role, sub: str = "u-test", person_id: str | None = None) -> dict[str, str]:
    """Authorization header with a token of the given role."""
    return {"Authorization": f"Bearer {issue_token(settings, sub=sub, role=role, person_id=person_id)}"}
