"""Helpers for the operators' tools tests: publish events as a service would, run the
``medcard`` operators' commands, serve an app over real HTTP in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner, Result

from medcard.ops.cli import app
from shared.bounded import within
from shared.codec import to_record
from shared.events import CloudEvent, EventData, new_event
from shared.kafka import idempotent_producer
from shared.settings import Settings
from shared.topics import topic_for_service
from tests.helpers import KAFKA_SECONDS


def event(data: EventData, *, key: str, sequence: int = 1, correlation: str | None = None) -> CloudEvent:
    """An envelope as the outbox builds it: the subject is the card number when there is one."""
    return new_event(data, source=f"/medcard/{data.service}", partitionkey=key, sequence=sequence,
                     correlationid=correlation or str(uuid.uuid4()),
                     subject=getattr(data, "card_number", None) or key)


async def publish(settings: Settings, *events: CloudEvent) -> list[tuple[int, int]]:
    """Publish to each event's service topic, in order; answer (partition, offset) of each."""
    producer = idempotent_producer(settings)
    await within(producer.start(), KAFKA_SECONDS, "a test producer starting (Kafka)")
    try:
        placed = []
        for ev in events:
            key, value, headers = to_record(ev)
            meta = await producer.send_and_wait(topic_for_service(ev.service, settings.namespace), value, key=key,
                                                headers=headers)
            placed.append((meta.partition, meta.offset))
        return placed
    finally:
        await within(producer.stop(), KAFKA_SECONDS, "a test producer stopping (Kafka)")


def cli_env(settings: Settings) -> dict[str, str]:
    return {"MEDCARD_NAMESPACE": settings.namespace, "MEDCARD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "MEDCARD_MONGO_URL": settings.mongo_url, "MEDCARD_ENVIRONMENT": settings.environment,
            "MEDCARD_JWT_SECRET": settings.jwt_secret, "COLUMNS": "200"}


async def run_medcard(settings: Settings, *args: str) -> Result:
    """Run an operators' command (in a thread: it runs its own event loop) against the
    settings' namespace."""
    def invoke() -> Result:
        return CliRunner().invoke(app, list(args), env=cli_env(settings))
    return await asyncio.to_thread(invoke)


async def medcard(settings: Settings, *args: str) -> Result:
    """Run an operators' command; fail the test on a non-zero exit."""
    result = await run_medcard(settings, *args)
    assert result.exit_code == 0, f"medcard {' '.join(args)} exited {result.exit_code}: {result.output}"
    return result


def json_lines(result: Result) -> list[Any]:
    """Each line of the command's standard output, parsed as JSON."""
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(factory: Callable[[], FastAPI], timeout: float = 60.0) -> Iterator[str]:
    """Serve the app the factory builds with uvicorn on a free port, in a thread with its own
    event loop (the factory runs there too); yield the base URL once it is listening."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(factory, factory=True, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=3))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError(f"the app did not start listening on port {port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
