"""The outbox relay's passes, wake-ups and idle flag, on an in-memory collection and producer
(no Kafka, no database): a notify is never lost to a pass that is running, and notified
aggregates are read by ``_id``, a batch at a time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared import relay as relay_module
from shared.bounded import within
from shared.events import MerchantRegistered, new_event
from shared.relay import BATCH_DOCS, OutboxRelay
from shared.settings import Settings
from tests.helpers import eventually
from tests.unit.memory_collection import Doc, MemoryCollection

LONG_POLL = Settings(relay_poll_seconds=60.0, relay_scan_seconds=600.0)
"""A relay that sleeps a minute unless woken: a lost wake-up shows as a minute's wait."""


class MemoryProducer:
    """Acknowledges every record at once; remembers the keys sent."""

    def __init__(self) -> None:
        self.keys: list[bytes] = []

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, topic: str, value: bytes, *, key: bytes, headers: Any) -> asyncio.Future[None]:
        self.keys.append(key)
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ack.set_result(None)
        return ack


def merchant(merchant_id: str, *, pending: bool = True) -> Doc:
    """A merchant aggregate as the store writes it, its registration in the outbox (or published)."""
    event = new_event(MerchantRegistered(merchant_id=merchant_id, name="Pharmacy", kind="pharmacy", designated=True),
                      source="/medcard/bank", partitionkey=merchant_id, sequence=1, correlationid="corr-test")
    return {"_id": merchant_id, "version": 1, "outbox": [event.model_dump(mode="json")] if pending else [],
            "pending": pending, "outbox_done": 0 if pending else 1}


@pytest.fixture
def producer(monkeypatch: pytest.MonkeyPatch) -> MemoryProducer:
    made = MemoryProducer()
    monkeypatch.setattr(relay_module, "idempotent_producer", lambda *_, **__: made)
    return made


async def started(coll: MemoryCollection) -> OutboxRelay:
    relay = OutboxRelay(LONG_POLL, [coll], name="bank")  # type: ignore[list-item]
    relay.start()
    await relay.wait_idle(timeout=5)
    return relay


async def test_an_aggregate_notified_while_a_pass_reads_is_published_at_once(producer: MemoryProducer) -> None:
    """The race seen as a stalled relay: a pass finds nothing to publish for what woke it (an
    aggregate an earlier pass already published); meanwhile another aggregate is written and
    notified. The relay must not then sleep out its poll interval with that one waiting."""
    coll = MemoryCollection("merchants")
    relay = await started(coll)
    try:
        coll.docs["M1"] = merchant("M1", pending=False)
        release = coll.hold_next_read()
        relay.notify("merchants", "M1")
        await within(coll.held.wait(), 5, "the relay reading M1")
        coll.docs["M2"] = merchant("M2")
        relay.notify("merchants", "M2")
        assert not relay.idle
        release.set()

        async def published() -> bool:
            return not coll.docs["M2"]["pending"] and relay.idle
        await eventually(published, timeout=5)  # not after the 60 s poll
    finally:
        await relay.stop()
    assert producer.keys == [b"M2"]


async def test_notified_aggregates_are_read_by_id_a_batch_at_a_time(producer: MemoryProducer) -> None:
    coll = MemoryCollection("merchants")
    relay = await started(coll)
    count = 2 * BATCH_DOCS + 17
    try:
        for i in range(count):
            coll.docs[f"M{i}"] = merchant(f"M{i}")
            relay.notify("merchants", f"M{i}")

        async def published() -> bool:
            return relay.idle and not any(d["pending"] for d in coll.docs.values())
        await eventually(published, timeout=10)
    finally:
        await relay.stop()
    by_id = [q["_id"]["$in"] for q in coll.queries if "_id" in q]
    assert [len(ids) for ids in by_id] == [BATCH_DOCS, BATCH_DOCS, 17]
    assert sorted(producer.keys) == sorted(f"M{i}".encode() for i in range(count))


async def test_a_full_scan_publishes_what_nobody_notified(producer: MemoryProducer) -> None:
    coll = MemoryCollection("merchants")
    relay = await started(coll)
    try:
        coll.docs["M9"] = merchant("M9")  # written by another replica, say: no notify here
        await relay.wait_idle(timeout=5)  # asks for a full scan
    finally:
        await relay.stop()
    assert producer.keys == [b"M9"] and not coll.docs["M9"]["pending"]


class HeldProducer(MemoryProducer):
    """Acknowledges nothing until ``release`` is set; remembers (key, sequence) sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[bytes, int]] = []
        self.release = asyncio.Event()

    async def send(self, topic: str, value: bytes, *, key: bytes, headers: Any) -> asyncio.Future[None]:
        self.keys.append(key)
        self.sent.append((key, int(dict(headers)["ce_sequence"])))
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def later() -> None:
            await self.release.wait()
            ack.set_result(None)
        asyncio.get_running_loop().create_task(later())
        return ack


def registration(merchant_id: str, sequence: int) -> Doc:
    return new_event(MerchantRegistered(merchant_id=merchant_id, name="Pharmacy", kind="pharmacy", designated=True),
                     source="/medcard/bank", partitionkey=merchant_id, sequence=sequence,
                     correlationid="corr-test").model_dump(mode="json")


async def test_an_outbox_handed_over_with_its_notice_is_published_without_a_read(producer: MemoryProducer) -> None:
    coll = MemoryCollection("merchants")
    relay = await started(coll)
    try:
        coll.docs["M1"] = merchant("M1")
        reads = len(coll.queries)
        relay.notify("merchants", "M1", {"version": 1, "outbox_done": 0, "outbox": coll.docs["M1"]["outbox"]})

        async def published() -> bool:
            return not coll.docs["M1"]["pending"] and relay.idle
        await eventually(published, timeout=5)
        assert coll.queries[reads:] == []  # neither a read by _id nor a scan
    finally:
        await relay.stop()
    assert producer.keys == [b"M1"] and coll.docs["M1"]["outbox_done"] == 1


async def test_an_aggregates_newer_events_wait_until_the_earlier_ones_are_acknowledged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Handed over while its first event is unacknowledged, an aggregate's second event waits;
    once the first is acknowledged (and cleared) only the second is sent, then cleared."""
    held = HeldProducer()
    monkeypatch.setattr(relay_module, "idempotent_producer", lambda *_, **__: held)
    coll = MemoryCollection("merchants")
    relay = await started(coll)
    try:
        first = registration("M1", 1)
        coll.docs["M1"] = {"_id": "M1", "version": 1, "outbox": [first], "pending": True, "outbox_done": 0}
        relay.notify("merchants", "M1", {"version": 1, "outbox_done": 0, "outbox": [first]})
        await eventually(lambda: _true(held.sent == [(b"M1", 1)]), timeout=5)
        second = registration("M1", 2)
        coll.docs["M1"].update(version=2, outbox=[first, second])
        relay.notify("merchants", "M1", {"version": 2, "outbox_done": 0, "outbox": [first, second]})
        await asyncio.sleep(0.05)
        assert held.sent == [(b"M1", 1)] and not relay.idle  # the second waits for the first's ack
        held.release.set()

        async def published() -> bool:
            return not coll.docs["M1"]["pending"] and relay.idle
        await eventually(published, timeout=5)
    finally:
        await relay.stop()
    assert held.sent == [(b"M1", 1), (b"M1", 2)]
    assert coll.docs["M1"]["outbox"] == [] and coll.docs["M1"]["outbox_done"] == 2


async def test_a_full_scan_pages_through_the_pending_documents_and_clears_them(producer: MemoryProducer) -> None:
    coll = MemoryCollection("merchants")
    relay = await started(coll)
    count = 2 * relay_module.SCAN_DOCS + 3
    try:
        for i in range(count):
            coll.docs[f"M{i}"] = merchant(f"M{i}")  # nobody notified: a crashed replica's, say
        await relay.wait_idle(timeout=10)
    finally:
        await relay.stop()
    assert sorted(producer.keys) == sorted(f"M{i}".encode() for i in range(count))
    assert not any(d["pending"] or d["outbox"] for d in coll.docs.values())


async def _true(value: bool) -> bool:
    return value
