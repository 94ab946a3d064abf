"""The outbox relay: publishes pending events, removes them only after Kafka acknowledged.

Woken at once after each command (``notify``) and also polling, so it catches up
after a crash or a broker outage. Events of one aggregate are sent in sequence order
with the same key, and the producer is idempotent, so they land in order, once per
producer session. A relay crash between the acknowledgement and the clean-up
republishes; consumers ignore the repeat by its sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiokafka import AIOKafkaProducer
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from .codec import stored_to_record
from .kafka import TRANSIENT_KAFKA_ERRORS, idempotent_producer
from .logging import get_logger
from .settings import Settings
from .topics import topic_for_service

log = get_logger("relay")
BATCH_DOCS = 500


class OutboxRelay:
    def __init__(self, settings: Settings, collections: list[AsyncCollection[dict[str, Any]]], *, name: str) -> None:
        self.settings = settings
        self.collections = collections
        self.name = name
        self.published = 0
        self.kafka_ok = False
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def notify(self) -> None:
        self._idle.clear()
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"relay-{self.name}")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close_producer()

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until nothing is pending (for tests and draining)."""
        self.notify()
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def _producer_ready(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = idempotent_producer(self.settings, client_id=f"{self.settings.namespace}-{self.name}-relay")
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _close_producer(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None

    async def _run(self) -> None:
        backoff = 0.2
        while not self._stopping:
            try:
                moved = await self.publish_pending()
                self.kafka_ok = True
                backoff = 0.2
            except TRANSIENT_KAFKA_ERRORS as err:
                self.kafka_ok = False
                log.warning("relay.kafka_unavailable", error=repr(err), retry_in=backoff)
                await self._close_producer()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except PyMongoError as err:
                log.warning("relay.database_unavailable", error=repr(err), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if moved:
                continue
            self._idle.set()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.relay_poll_seconds)

    async def publish_pending(self) -> int:
        """One pass: publish up to BATCH_DOCS aggregates' pending events.

        Returns how many aggregates were handled (0: nothing was pending).
        """
        sent = touched = 0
        for coll in self.collections:
            docs = await coll.find(
                {"pending": True}, {"outbox": 1, "version": 1, "outbox_done": 1}
            ).limit(BATCH_DOCS).to_list()
            if not docs:
                continue
            touched += len(docs)
            producer = await self._producer_ready()
            futures = []
            for doc in docs:
                for stored in doc.get("outbox", []):
                    if stored["sequence"] <= doc.get("outbox_done", 0):
                        continue
                    key, value, headers = stored_to_record(stored)
                    topic = topic_for_service(stored["type"].split(".")[2], self.settings.namespace)
                    futures.append(await producer.send(topic, value, key=key, headers=headers))
            await asyncio.gather(*futures)
            sent += len(futures)
            await coll.bulk_write(
                [UpdateOne({"_id": d["_id"]}, {"$max": {"outbox_done": d["version"]}}) for d in docs], ordered=False
            )
            await coll.bulk_write(
                [
                    UpdateOne({"_id": d["_id"], "version": d["version"]}, {"$set": {"outbox": [], "pending": False}})
                    for d in docs
                ],
                ordered=False,
            )
        self.published += sent
        return touched
