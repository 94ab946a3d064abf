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
from shared.bounded import within
from shared.settings import Settings
from shared.topics import topic_for_service

KAFKA_SECONDS = 60.0
"""Longest a test's Kafka producer may take to start (an idempotent one asks the broker for
its producer id until it answers) or to stop."""
STOP_SECONDS = 30.0
"""Longest a test's Kafka client may take to stop (leaving its group)."""
REQUEST_SECONDS = 120.0
"""Longest a request to an in-process service may take (the database server may stall for
tens of seconds under the load of other suites)."""
SERVICE_STOP_SECONDS = 120.0
"""Longest an in-process service may take to stop (its consumers' grace, clients closing)."""


async def read_topic(
    settings: Settings, topic: str, *, until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout: float = 20.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read a topic from the beginning with a throwaway group until ``until(records)``."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap, group_id=f"reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest", enable_auto_commit=False,
    )
    deadline = time.monotonic() + timeout
    await within(consumer.start(), timeout, f"a reader of {topic} starting (Kafka)")
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        while not until(records):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out reading {topic}: {len(records)} records")
            batch = await consumer.getmany(timeout_ms=300)
            for recs in batch.values():
                records.extend(recs)
        return records
    finally:
        await within(consumer.stop(), STOP_SECONDS, f"a reader of {topic} stopping (Kafka)")


async def read_service_topic(settings: Settings, service: str, count: int, timeout: float = 20.0) -> list[Any]:
    return await read_topic(settings, topic_for_service(service, settings.namespace),
                            until=lambda r: len(r) >= count, timeout=timeout)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0, interval: float = 0.1) -> None:
    """Wait until ``check()`` is true, ``timeout`` seconds at most in all: a check that hangs
    (a request to a stalled server) is cut off at the deadline too, and the failure names it."""
    deadline = time.monotonic() + timeout
    what = getattr(check, "__qualname__", repr(check))
    while True:
        try:
            if await within(check(), max(0.0, deadline - time.monotonic()), f"check {what}"):
                return
        except TimeoutError as err:
            raise AssertionError(f"condition not met in {timeout:g} s: {err}") from None
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout:g} s: check {what}")
        await asyncio.sleep(interval)


class BoundedTransport(httpx.AsyncBaseTransport):
    """Another transport, each request bounded in all (httpx's timeouts do not apply to an
    app called in process: a request stuck in the app would wait for ever)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, seconds: float) -> None:
        self.inner = inner
        self.seconds = seconds

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await within(self.inner.handle_async_request(request), self.seconds,
                            f"{request.method} {request.url.path} (in process)")

    async def aclose(self) -> None:
        await self.inner.aclose()


@contextlib.asynccontextmanager
async def running_service(create: Callable[[Settings], FastAPI], settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Run a service app in this process (lifespan included) against the real servers,
    wait until it is ready, and yield an HTTP client bound to it. The app is stopped at the
    end, also when the test failed (its workers must not outlive it), within
    ``SERVICE_STOP_SECONDS``: a stop that hangs fails the test instead of holding it."""
    app = create(settings)
    lifespan = app.router.lifespan_context(app)
    await within(lifespan.__aenter__(), 60, f"{app.title} starting")

    async def stop() -> None:
        await within(lifespan.__aexit__(None, None, None), SERVICE_STOP_SECONDS, f"{app.title} stopping")

    try:
        transport = BoundedTransport(httpx.ASGITransport(app=app), REQUEST_SECONDS)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            async def ready() -> bool:
                return (await client.get("/ready")).status_code == 200
            await eventually(ready, timeout=60)
            yield client
    except BaseException:
        with contextlib.suppress(Exception):  # the test's own failure is the news
            await stop()
        raise
    await stop()


def auth(settings: Settings, role: Role, sub: str = "u-test", person_id: str | None = None) -> dict[str, str]:
    """Authorization header with a token of the given role."""
    return {"Authorization": f"Bearer {issue_token(settings, sub=sub, role=role, person_id=person_id)}"}
