"""The consumer runner: one consumer group per service, at-most-once application,
offsets committed after the projection write, dead letters for what cannot be applied.

A handler is an async function taking the typed event. It raises:
- nothing: applied (or recognised as a repeat and ignored);
- a transient infrastructure error (database unreachable): the same event is retried
  with backoff, nothing is committed, the partition waits;
- anything else (a malformed event, a domain rule it breaks, a bug): the record goes
  to ``<topic>.dlq`` with the reason in headers, and the partition moves on.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from datetime import UTC, datetime
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from pymongo.errors import PyMongoError

from .bounded import cancel_and_wait, stop_if_cancelled, within
from .codec import from_record
from .events import CloudEvent
from .kafka import TRANSIENT_KAFKA_ERRORS, idempotent_producer
from .database import transient
from .logging import EVENT_KEYS, bind, get_logger, unbind
from .settings import Settings

log = get_logger("consumer")
T = TypeVar("T")
STOP_GRACE_SECONDS = 5.0
"""How long a stopping consumer lets the batch in hand finish (a poll waits 0.5 s)."""
KAFKA_SECONDS = 60.0
"""Longest one call to Kafka may wait (joining, a poll, a commit, a dead letter): one that
overruns counts as Kafka away (reconnect; the batch not committed is fetched again)."""
POLL_MS = 500
Handler = Callable[[CloudEvent], Awaitable[None]]
BatchHandler = Callable[[list[CloudEvent]], Awaitable[list[Exception | None]]]
"""Applies a whole fetched batch (in log order per partition) and returns, per event,
None (applied or a repeat) or the error that refuses it (dead-lettered). It raises a
transient database error to have the batch retried; anything else it raises sends the
batch through ``handler``, one event at a time."""


def settle_the_heap() -> None:
    """Once per process, as its first consumer starts: collect what start-up left over,
    then freeze what remains (modules, models, schemas, clients: kept for the life of the
    process) out of the cyclic garbage collector's sight. A batch allocates many
    short-lived objects, each collection of the oldest generation went through all those
    as well: about 40% of a consumer's CPU per event (measured, ``gc.freeze`` beside
    none). Frozen objects are still freed by reference counting."""
    global _SETTLED  # noqa: PLW0603 - once per process, by design
    if not _SETTLED:
        _SETTLED = True
        gc.collect()
        gc.freeze()


_SETTLED = False


def dead_letter_headers(record: ConsumerRecord[bytes, bytes], reason: str, service: str) -> list[tuple[str, bytes]]:
    return [
        *(record.headers or ()),
        ("dlq_reason", reason[:2000].encode()),
        ("dlq_topic", record.topic.encode()),
        ("dlq_partition", str(record.partition).encode()),
        ("dlq_offset", str(record.offset).encode()),
        ("dlq_service", service.encode()),
        ("dlq_time", datetime.now(UTC).isoformat().encode()),
    ]


class ConsumerRunner:
    def __init__(
        self,
        settings: Settings,
        *,
        service: str,
        topics: list[str],
        handler: Handler,
        batch_handler: BatchHandler | None = None,
        group_id: str | None = None,
        max_records: int = 500,
        concurrency: int = 8,
        max_poll_interval_ms: int = 300_000,
    ) -> None:
        self.settings = settings
        self.service = service
        self.topics = topics
        self.handler = handler
        self.batch_handler = batch_handler
        self.group_id = group_id or settings.group_id(service)
        self.max_records = max_records
        self._slots = asyncio.Semaphore(concurrency)
        self.max_poll_interval_ms = max_poll_interval_ms
        self.applied = 0
        self.dead_lettered = 0
        self.running = False
        self._consumer: AIOKafkaConsumer | None = None
        self._dlq: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        settle_the_heap()
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.service}")

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop after the batch in hand: it is applied and its offsets committed, then the
        consumer leaves its group (the partitions move to another replica at once). A
        batch still busy after ``grace`` seconds (the database away, say) is cancelled:
        nothing of it is committed, and its next owner applies it, each event once."""
        self._stopping = True
        if self._task:
            finished, _ = await asyncio.wait({self._task}, timeout=grace)
            if not finished:
                log.warning("consumer.stop_cancelled_a_batch", group=self.group_id, grace=grace)
                if not await cancel_and_wait(self._task, grace):
                    log.error("consumer.stop_timed_out", group=self.group_id, waited=2 * grace)
            elif not self._task.cancelled():
                self._task.exception()  # retrieved: the consumer is stopping anyway
        await self._close()
        log.info("consumer.stopped", group=self.group_id, applied=self.applied, dead_lettered=self.dead_lettered)

    async def _close(self) -> None:
        clients, self._consumer, self._dlq = (self._consumer, self._dlq), None, None
        self.running = False
        for client in clients:
            if client is not None:
                await self._stop_client(client)

    async def _stop_client(self, client: AIOKafkaConsumer | AIOKafkaProducer) -> None:
        try:
            await within(client.stop(), KAFKA_SECONDS, f"consumer {self.group_id}: stopping a Kafka client")
        except Exception as err:
            log.warning("consumer.client_stop_failed", group=self.group_id, error=repr(err))

    async def _connect(self) -> None:
        consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=self.group_id,
            client_id=f"{self.group_id}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_interval_ms=self.max_poll_interval_ms,
        )
        dlq = idempotent_producer(self.settings, client_id=f"{self.group_id}-dlq")
        try:
            await within(consumer.start(), KAFKA_SECONDS, f"consumer {self.group_id}: starting its Kafka consumer")
            await within(dlq.start(), KAFKA_SECONDS, f"consumer {self.group_id}: starting its dead-letter producer")
        except BaseException:
            await self._stop_client(consumer)
            await self._stop_client(dlq)
            raise
        self._consumer, self._dlq = consumer, dlq
        self.running = True

    async def _run(self) -> None:
        backoff = 0.2
        while not self._stopping:
            stop_if_cancelled()
            try:
                if self._consumer is None:
                    await self._connect()
                    backoff = 0.2
                await self._poll_once()
            except Exception as err:  # Kafka away (or a bug, which must not end the consumer silently)
                stop_if_cancelled(err)
                transient = isinstance(err, TRANSIENT_KAFKA_ERRORS)
                (log.warning if transient else log.error)(
                    "consumer.kafka_unavailable" if transient else "consumer.failed", group=self.group_id,
                    error=repr(err), retry_in=backoff)
                await self._close()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _poll_once(self) -> None:
        """Apply one fetched batch, then commit it.

        Records with the same key (one aggregate) are applied one after the other, in
        log order; different keys are applied concurrently (at most ``concurrency`` at
        once), since Kafka orders nothing between keys anyway. If one fails with a
        transient Kafka error the others are cancelled, nothing is committed, and the
        batch is fetched again after reconnecting (applying is at most once per event).
        With a ``batch_handler``, the whole batch goes to it instead (see ``BatchHandler``).
        """
        assert self._consumer is not None
        batches = await within(self._consumer.getmany(timeout_ms=POLL_MS, max_records=self.max_records),
                               KAFKA_SECONDS, f"consumer {self.group_id}: a poll of {self.topics}")
        if not batches:
            return
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()}
        left = list(batches.items())
        if self.batch_handler is not None:
            left = await self._handle_batch(batches)
        chains: dict[tuple[Any, bytes | None], list[ConsumerRecord[bytes, bytes]]] = {}
        for tp, records in left:
            for record in records:
                chains.setdefault((tp, record.key), []).append(record)
        if len(chains) == 1:
            for record in next(iter(chains.values())):
                await self._handle(record)
        else:
            try:
                async with asyncio.TaskGroup() as group:
                    for chain in chains.values():
                        group.create_task(self._handle_chain(chain))
            except* TRANSIENT_KAFKA_ERRORS as failed:
                raise failed.exceptions[0] from None
        # aiokafka retries a commit for as long as the group coordinator is unknown: bounded.
        await within(self._consumer.commit(offsets), KAFKA_SECONDS,
                     f"consumer {self.group_id}: committing offsets {_positions(offsets)}")

    async def _handle_batch(self, batches: dict[Any, list[ConsumerRecord[bytes, bytes]]]
                            ) -> list[tuple[Any, list[ConsumerRecord[bytes, bytes]]]]:
        """The batch through ``batch_handler``. Returns what is left to apply one event at
        a time: nothing, or (if the batch handler failed otherwise than on a refused event
        or the database) every well-formed record, so that exactly the one at fault is
        dead-lettered."""
        assert self.batch_handler is not None
        unbind(*EVENT_KEYS)  # a batch is many events: lines about one of them name it themselves
        records, events, parsed = [], [], []
        for tp, tp_records in batches.items():
            kept = []
            for record in tp_records:
                try:
                    events.append(from_record(record))
                except Exception as err:  # malformed: never retried
                    await self._dead_letter(record, f"unparseable: {err}")
                    continue
                records.append(record)
                kept.append(record)
            parsed.append((tp, kept))
        batch_handler = self.batch_handler
        try:
            errors = await self._until_the_database_answers(lambda: batch_handler(events))
        except Exception as err:
            log.warning("consumer.batch_failed", error=repr(err), events=len(events))
            return parsed
        for record, event, error in zip(records, events, errors, strict=True):
            if error is None:
                self.applied += 1
            else:
                bind(event_id=event.id, correlation_id=event.correlationid, event_type=event.name)
                await self._dead_letter(record, f"{type(error).__name__}: {error}")
        return []

    async def _handle_chain(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        async with self._slots:
            for record in records:
                await self._handle(record)

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            event = from_record(record)
        except Exception as err:  # malformed: never retried
            await self._dead_letter(record, f"unparseable: {err}")
            return
        bind(event_id=event.id, correlation_id=event.correlationid, event_type=event.name)
        try:
            await self._until_the_database_answers(lambda: self.handler(event))
        except Exception as err:
            await self._dead_letter(record, f"{type(err).__name__}: {err}")
            return
        self.applied += 1

    @staticmethod
    async def _until_the_database_answers(call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, again with backoff while it fails on an unreachable database
        (whatever else it raises propagates)."""
        backoff = 0.1
        while True:
            try:
                return await call()
            except PyMongoError as err:
                stop_if_cancelled(err)  # a cancellation turned into pymongo's error is no outage
                if not transient(err):
                    raise
                log.warning("consumer.database_unavailable", error=repr(err), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], reason: str) -> None:
        assert self._dlq is not None
        log.warning("consumer.dead_lettered", topic=record.topic, offset=record.offset, reason=reason)
        await within(self._dlq.send_and_wait(
            f"{record.topic}.dlq", record.value, key=record.key,
            headers=dead_letter_headers(record, reason, self.service),
        ), KAFKA_SECONDS, f"consumer {self.group_id}: dead-lettering {record.topic}/{record.partition}@{record.offset}")
        self.dead_lettered += 1


def _positions(offsets: dict[Any, int]) -> str:
    """``topic/partition@offset`` of each committed position, for messages."""
    return ", ".join(f"{tp.topic}/{tp.partition}@{offset}" for tp, offset in offsets.items())
