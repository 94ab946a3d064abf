"""The outbox relay: publishes pending events, removes them only after Kafka acknowledged.

Every command tells the relay which aggregate it wrote (``notify``), so the relay loads
exactly those documents by ``_id`` (when many wait at once, the pending ones by one
indexed query instead). A full scan for ``pending`` documents runs at start-up,
every ``relay_scan_seconds`` and after a failure: it catches what a crashed process or
another replica left behind. Events of one aggregate are sent in sequence order with the
same key by an idempotent producer, so they land in order. A relay crash between the
broker's acknowledgement and the clean-up republishes; consumers ignore the repeat by its
sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
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
READ_EACH_UP_TO = 16
"""Notified aggregates read one by one (by ``_id``); more than this: one query on ``pending``."""
Doc = dict[str, Any]


class OutboxRelay:
    def __init__(self, settings: Settings, collections: list[AsyncCollection[Doc]], *, name: str) -> None:
        self.settings = settings
        self.collections = collections
        self.name = name
        self.published = 0
        self.kafka_ok = False
        self._dirty: dict[str, set[str]] = {}
        self._scan_due = 0.0  # monotonic time of the next full scan; 0: at once
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def notify(self, collection: str | None = None, aggregate_id: str | None = None) -> None:
        """An aggregate was written with new events (or, without arguments: scan everything)."""
        if collection is None or aggregate_id is None:
            self._scan_due = 0.0
        else:
            self._dirty.setdefault(collection, set()).add(aggregate_id)
        self._idle.clear()
        self._wake.set()

    @property
    def idle(self) -> bool:
        """Nothing notified is waiting and the last pass found nothing to publish."""
        return self._idle.is_set() and not self._dirty

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
        """Wait until a full scan found nothing pending (for tests and draining)."""
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
            except (*TRANSIENT_KAFKA_ERRORS, PyMongoError) as err:
                self.kafka_ok = not isinstance(err, TRANSIENT_KAFKA_ERRORS)
                log.warning("relay.retry", error=repr(err), retry_in=backoff)
                await self._close_producer()
                self._scan_due = 0.0
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if moved:
                continue
            if not self._dirty and self._scan_due > time.monotonic():
                self._idle.set()
            self._wake.clear()
            timeout = max(0.0, min(self._scan_due - time.monotonic(), self.settings.relay_poll_seconds))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def publish_pending(self) -> int:
        """One pass over the notified aggregates (and a full scan when due).

        Returns how many aggregates had pending events (0: nothing to do).
        """
        touched = 0
        full_scan = self._scan_due <= time.monotonic()
        if full_scan:
            self._scan_due = time.monotonic() + self.settings.relay_scan_seconds
        for coll in self.collections:
            ids = self._dirty.pop(coll.name, set())
            try:
                docs = await self._load(coll, ids, full_scan)
                if docs:
                    await self._publish(coll, docs)
            except BaseException:
                self._dirty.setdefault(coll.name, set()).update(ids)
                raise
            touched += len(docs)
        return touched

    async def _load(self, coll: AsyncCollection[Doc], ids: set[str], full_scan: bool) -> list[Doc]:
        fields = {"outbox": 1, "version": 1, "outbox_done": 1, "pending": 1}
        if full_scan or len(ids) > READ_EACH_UP_TO:
            # One indexed query for up to BATCH_DOCS pending documents: cheaper than a read
            # each once many aggregates wait (a month end notifies one per account).
            docs = await coll.find({"pending": True}, fields).limit(BATCH_DOCS).to_list()
            if len(docs) == BATCH_DOCS:
                if full_scan:
                    self._scan_due = 0.0  # more left: scan again at once
                left = ids - {d["_id"] for d in docs}
                if left:
                    self._dirty.setdefault(coll.name, set()).update(left)
            return docs
        found = await asyncio.gather(*(coll.find_one({"_id": i}, fields) for i in ids))
        return [d for d in found if d and d.get("pending")]

    async def _publish(self, coll: AsyncCollection[Doc], docs: list[Doc]) -> None:
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
        self.published += len(futures)
        await coll.bulk_write(
            [UpdateOne({"_id": d["_id"]}, {"$max": {"outbox_done": d["version"]}}) for d in docs], ordered=False
        )
        await coll.bulk_write(
            [UpdateOne({"_id": d["_id"], "version": d["version"]}, {"$set": {"outbox": [], "pending": False}})
             for d in docs],
            ordered=False,
        )
