"""Helpers for the notifications and contract tests: producing events as other services
would, one sample of every event type, the notifications app with its runtime, and a
real local HTTP server that receives webhooks."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import socket
import types
import typing
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

import httpx
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from services.notifications.app import create
from services.notifications.config import NotificationSettings
from shared.bounded import within
from shared.codec import to_record
from shared.events import CloudEvent, EventData, PersonRegistered, new_event
from shared.ids import new_card_number
from shared.service import ServiceRuntime
from shared.settings import Settings
from shared.topics import topic_for_service
from tests.helpers import KAFKA_SECONDS, running_service

CARD = "6216610000000012345"


def event(data: EventData, key: str, sequence: int = 1, **attrs: Any) -> CloudEvent:
    """An envelope as the owning service's outbox would write it."""
    return new_event(data, source=f"/medcard/{data.service}", partitionkey=key, sequence=sequence,
                     correlationid=attrs.pop("correlationid", "corr-test"),
                     subject=getattr(data, "card_number", None) or key, **attrs)


def person(person_id: str, *, language: Literal["zh", "en"] = "zh", name: str = "张三",
           mobile: str = "13800138000") -> CloudEvent:
    return event(PersonRegistered(person_id=person_id, name=name, id_number_masked="110***********123X",
                                  id_number_digest="0" * 64, mobile=mobile, unit_id=None, language=language),
                 person_id)


async def produce(settings: Settings, events: list[CloudEvent]) -> None:
    """Publish envelopes to their services' topics, in order (binary mode, as the relay does)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, acks="all")
    await within(producer.start(), KAFKA_SECONDS, "a test producer starting (Kafka)")
    try:
        for e in events:
            key, value, headers = to_record(e)
            await producer.send_and_wait(topic_for_service(e.service, settings.namespace), value, key=key,
                                         headers=headers)
    finally:
        await within(producer.stop(), KAFKA_SECONDS, "a test producer stopping (Kafka)")


def _value(name: str, annotation: Any) -> Any:
    special = {"month": "2026-01", "mobile": "13800138000", "id_number_masked": "110***********123X"}
    if name in special:
        return special[name]
    if "card_number" in name or name in ("replaces", "replaced_by"):
        return new_card_number()
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return args[0]
    if origin in (types.UnionType, typing.Union):
        return _value(name, next(a for a in args if a is not type(None)))
    if origin is list:
        return ["receipt", "id_card"]
    samples: dict[Any, Any] = {str: f"sample-{name}", int: 1, bool: True, date: date(2026, 1, 5),
                               datetime: datetime(2026, 1, 5, 6, 30, tzinfo=UTC)}
    return samples[annotation]


def sample(cls: type[EventData]) -> EventData:
    """A valid payload of any event type, every field filled (optional ones too)."""
    return cls(**{name: _value(name, f.annotation) for name, f in cls.model_fields.items()})


@contextlib.asynccontextmanager
async def running_notifications(
    settings: Settings, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, ServiceRuntime]]:
    """The notifications app against the real servers, with fast retries; yields client and runtime."""
    config = NotificationSettings(**{**settings.model_dump(), "worker_poll_seconds": 0.1,
                                     "sms_backoff_seconds": 0.05, "webhook_backoff_seconds": 0.1,
                                     "webhook_backoff_max_seconds": 0.5, **overrides})
    apps: list[FastAPI] = []

    def factory(_: Settings) -> FastAPI:
        apps.append(create(config))
        return apps[0]

    async with running_service(factory, config) as client:
        yield client, apps[0].state.runtime


def applied(runtime: ServiceRuntime) -> int:
    """How many records the service's consumer has handled (applied, repeats included)."""
    return sum(c.applied + c.dead_lettered for c in runtime.consumers)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


LOCAL_RECEIVERS = "127.0.0.0/8"
"""``webhook_allowed_networks`` for a test whose webhooks go to a receiver on this machine
(loopback is refused by default)."""


@dataclass
class WebhookReceiver:
    """A real HTTP/1.1 server on 127.0.0.1 that records each POST and answers 204 (or
    ``answer``); it can be stopped (the port refuses connections) and started again on the
    same port."""

    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    answer: bytes = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in head[1:] if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.received.append(Received(headers, body))
            writer.write(self.answer)
            await writer.drain()
        finally:
            writer.close()


def verify_standard_webhook(secret: str, received: Received) -> bool:
    """What a receiver does, written from the Standard Webhooks specification alone."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{received.headers['webhook-id']}.{received.headers['webhook-timestamp']}.".encode() + received.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [s.split(",", 1)[1] for s in received.headers["webhook-signature"].split() if s.startswith("v1,")]
    return any(hmac.compare_digest(expected, s) for s in offered)
