"""Follow the event topics live, with filters: shared by ``medcard events tail`` and the
console's live stream."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer

from shared.settings import Settings

from .filters import EventFilter, Start
from .reader import poll, reader, seek
from .views import EventView


class EventTail:
    """A positioned group-less consumer; :meth:`poll` answers the matching events that arrived."""

    def __init__(self, consumer: AIOKafkaConsumer, match: EventFilter) -> None:
        self.consumer = consumer
        self.match = match

    async def poll(self, timeout: float = 0.5) -> tuple[int, list[EventView]]:
        """(records received, the matching ones among them) from one fetch."""
        records = await poll(self.consumer, timeout)
        return len(records), [v for r in records if self.match.matches(v := EventView.of(r))]


@asynccontextmanager
async def event_tail(settings: Settings, topics: list[str], start: Start, match: EventFilter) -> AsyncIterator[
        EventTail]:
    """An :class:`EventTail` positioned at ``start`` on every partition of ``topics``."""
    async with reader(settings, topics) as (consumer, tps):
        await seek(consumer, tps, start)
        yield EventTail(consumer, match)


async def tail(settings: Settings, *, topics: list[str], start: Start, match: EventFilter,
               emit: Callable[[EventView], None], limit: int | None = None,
               idle_exit: float | None = None) -> int:
    """Emit matching events until ``limit`` were emitted or nothing arrived for ``idle_exit``
    seconds (forever when neither is given); answer how many were emitted."""
    emitted = 0
    async with event_tail(settings, topics, start, match) as stream:
        last_seen = time.monotonic()
        while limit is None or emitted < limit:
            received, views = await stream.poll(0.5)
            if received:
                last_seen = time.monotonic()
            for view in views[: None if limit is None else limit - emitted]:
                emit(view)
                emitted += 1
            if idle_exit is not None and time.monotonic() - last_seen >= idle_exit:
                break
    return emitted
