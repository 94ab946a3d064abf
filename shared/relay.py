"""The outbox relay: publishes pending events, removes them only after Kafka acknowledged.

Every command tells the relay which aggregate it wrote (``notify``), so the relay loads
exactly those documents by ``_id`` (one ``$in`` query per collection). A full scan for
``pending`` documents runs at start-up, every ``relay_scan_seconds`` and after a failure:
it catches what a crashed process or another replica left behind. Events of one aggregate
are sent in sequence order with the same key by an idempotent producer, so they land in
order. A relay crash between the broker's acknowledgement and the clean-up republishes;
consumers ignore the repeat by its sequence. Every step of a pass (a read, the hand-over
to the producer, the acknowledgements, the clean-up) is bounded by ``STEP_SECONDS``: a
step that overruns fails the pass, which is retried after a full scan.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiokafka import AIOKafkaProducer
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import NetworkTimeout, PyMongoError

from .bounded import cancel_and_wait, wait_event, within
from .codec import stored_to_record
from .kafka import TRANSIENT_KAFKA_ERRORS, idempotent_producer
from .logging import get_logger
from .settings import Settings
from .topics import topic_for_service

log = get_logger("relay")
BATCH_DOCS = 500
"""Aggregates of one collection read (and published) by one pass."""
FIELDS = {"outbox": 1, "version": 1, "outbox_done": 1, "pending": 1}
STEP_SECONDS = 60.0
"""Longest one step of a pass may wait (on the database or on Kafka)."""
STOP_SECONDS = 10.0
"""How long ``stop`` waits for the relay's task, then for its producer, to end."""
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
        """Nothing notified is waiting and the last pass found nothing to publish.

        This is what the relay knows, not what the database holds: a pending document it
        was never told about (another replica's, or one whose write answer was lost and whose
        retry found it applied) waits for the next full scan. Whether anything is pending at
        all is counted in the database (``/ops/outbox``)."""
        return self._idle.is_set() and not self._dirty

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"relay-{self.name}")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task and not await cancel_and_wait(self._task, STOP_SECONDS):
            log.error("relay.stop_timed_out", relay=self.name, waited=STOP_SECONDS)
        await self._close_producer()

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until a full scan found nothing pending (for tests and draining)."""
        self.notify()
        await within(self._idle.wait(), timeout, f"relay {self.name}: a full scan finding nothing pending")

    async def _producer_ready(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = idempotent_producer(self.settings, client_id=f"{self.settings.namespace}-{self.name}-relay")
            try:
                await within(producer.start(), STEP_SECONDS, f"relay {self.name}: starting its Kafka producer")
            except BaseException:
                with contextlib.suppress(Exception):
                    await within(producer.stop(), STOP_SECONDS, f"relay {self.name}: stopping its Kafka producer")
                raise
            self._producer = producer
        return self._producer

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await within(producer.stop(), STOP_SECONDS, f"relay {self.name}: stopping its Kafka producer")
            except Exception as err:
                log.warning("relay.producer_stop_failed", relay=self.name, error=repr(err))

    async def _run(self) -> None:
        backoff = 0.2
        while not self._stopping:
            # Cleared before the pass, never after it: a notify that arrives while the pass
            # runs leaves the event set, so the wait below returns at once.
            self._wake.clear()
            try:
                moved = await self.publish_pending()
            except Exception as err:  # Kafka or the database away (or a bug): retry after a full scan
                self.kafka_ok = not isinstance(err, TRANSIENT_KAFKA_ERRORS)
                transient = isinstance(err, (*TRANSIENT_KAFKA_ERRORS, PyMongoError))
                (log.warning if transient else log.error)("relay.retry", error=repr(err), retry_in=backoff)
                await self._close_producer()
                self._scan_due = 0.0
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self.kafka_ok = True
            backoff = 0.2
            if moved or self._dirty:
                continue
            if self._scan_due > time.monotonic():
                self._idle.set()
            await wait_event(self._wake, max(0.0, min(self._scan_due - time.monotonic(),
                                                      self.settings.relay_poll_seconds)))

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
                    self._idle.clear()  # (a full scan may find what no notify announced)
                    await self._publish(coll, docs)
            except BaseException:
                self._renotify(coll.name, ids)
                raise
            touched += len(docs)
        return touched

    def _renotify(self, collection: str, ids: set[str] | list[str]) -> None:
        """Keep ``ids`` notified for the next pass."""
        if ids:
            self._dirty.setdefault(collection, set()).update(ids)

    async def _load(self, coll: AsyncCollection[Doc], ids: set[str], full_scan: bool) -> list[Doc]:
        """The pending documents to publish: on a full scan up to ``BATCH_DOCS`` of any (with
        as many found, more may wait: scan again at once and keep ``ids`` notified), else
        the notified ones, ``BATCH_DOCS`` at a time (the rest stays notified)."""
        if full_scan:
            docs = await self._read(coll, {"pending": True})
            if len(docs) == BATCH_DOCS:
                self._scan_due = 0.0
                self._renotify(coll.name, ids - {d["_id"] for d in docs})
            return docs
        wanted = list(ids)
        self._renotify(coll.name, wanted[BATCH_DOCS:])
        if not wanted:
            return []
        return await self._read(coll, {"_id": {"$in": wanted[:BATCH_DOCS]}, "pending": True})

    async def _read(self, coll: AsyncCollection[Doc], query: Doc) -> list[Doc]:
        return await within(coll.find(query, FIELDS).limit(BATCH_DOCS).to_list(), STEP_SECONDS,
                            f"relay {self.name}: reading pending events of {coll.name}", NetworkTimeout)

    async def _publish(self, coll: AsyncCollection[Doc], docs: list[Doc]) -> None:
        producer = await self._producer_ready()
        acks = await within(self._send(producer, docs), STEP_SECONDS,
                            f"relay {self.name}: handing the events of {len(docs)} {coll.name} to Kafka")
        await within(asyncio.gather(*acks), STEP_SECONDS,
                     f"relay {self.name}: Kafka's acknowledgement of {len(acks)} events of {coll.name}")
        self.published += len(acks)
        what = f"relay {self.name}: marking {len(docs)} {coll.name} published"
        await within(coll.bulk_write(
            [UpdateOne({"_id": d["_id"]}, {"$max": {"outbox_done": d["version"]}}) for d in docs], ordered=False,
        ), STEP_SECONDS, what, NetworkTimeout)
        await within(coll.bulk_write(
            [UpdateOne({"_id": d["_id"], "version": d["version"]}, {"$set": {"outbox": [], "pending": False}})
             for d in docs],
            ordered=False,
        ), STEP_SECONDS, what, NetworkTimeout)

    async def _send(self, producer: AIOKafkaProducer, docs: list[Doc]) -> list[asyncio.Future[Any]]:
        """Hand every unpublished event of ``docs`` to the producer, in sequence order per
        aggregate; returns the futures of the broker's acknowledgements."""
        acks = []
        for doc in docs:
            for stored in doc.get("outbox", []):
                if stored["sequence"] <= doc.get("outbox_done", 0):
                    continue
                key, value, headers = stored_to_record(stored)
                topic = topic_for_service(stored["type"].split(".")[2], self.settings.namespace)
                acks.append(await producer.send(topic, value, key=key, headers=headers))
        return acks
