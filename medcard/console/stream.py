"""The live stream as server-sent events: ``ready`` once positioned, one ``message`` per
matching event, a comment now and then to keep the connection open, ``failure`` if Kafka
cannot be read."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

from medcard.ops.filters import EventFilter, Start
from medcard.ops.tail import event_tail
from shared.domain import DomainError
from shared.kafka import TRANSIENT_KAFKA_ERRORS
from shared.settings import Settings

KEEPALIVE_SECONDS = 15.0


def sse(data: str, event: str | None = None, event_id: str | None = None) -> str:
    head = (f"event: {event}\n" if event else "") + (f"id: {event_id}\n" if event_id else "")
    return head + "".join(f"data: {line}\n" for line in data.splitlines() or [""]) + "\n"


async def event_stream(settings: Settings, topics: list[str], start: Start, match: EventFilter) -> AsyncIterator[str]:
    """Server-sent events for the matching events from ``start`` on, until the client leaves."""
    try:
        async with event_tail(settings, topics, start, match) as tail:
            yield sse(json.dumps({"topics": topics}), event="ready")
            quiet_since = time.monotonic()
            while True:
                _, views = await tail.poll(0.5)
                for view in views:
                    yield sse(view.line().model_dump_json(), event_id=f"{view.topic}/{view.partition}@{view.offset}")
                    quiet_since = time.monotonic()
                if time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
                    yield ": keep-alive\n\n"
                    quiet_since = time.monotonic()
    except DomainError as err:
        yield sse(json.dumps({"error": err.code, "detail": err.message}), event="failure")
    except TRANSIENT_KAFKA_ERRORS as err:
        yield sse(json.dumps({"error": "kafka_unavailable", "detail": repr(err)}), event="failure")
