"""The shared event backbone against the real Kafka broker and MongoDB-wire server."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from pydantic import BaseModel
from pymongo import AsyncMongoClient

from shared.codec import from_record, to_record
from shared.consumer import ConsumerRunner
from shared.events import CardIssued, CardLost, CloudEvent, PersonRegistered, new_event
from shared.domain import Decision
from shared.outbox import AggregateStore
from shared.projection import apply_once
from shared.relay import OutboxRelay
from shared.settings import Settings
from shared.topics import TOPICS, topic_for_service
from tests.helpers import eventually, read_service_topic, read_topic

pytestmark = pytest.mark.infra


class Holder(BaseModel):
    person_id: str
    cards: list[str] = []


def issue(person_id: str, number: str):  # a tiny pure "domain" for the tests
    def decide(state: Holder | None) -> Decision[Holder]:
        holder = state or Holder(person_id=person_id)
        holder = holder.model_copy(update={"cards": [*holder.cards, number]})
        return Decision(holder, [CardIssued(person_id=person_id, card_number=number, agent_bank="BOC")])
    return decide


async def make_store(settings: Settings) -> tuple[AsyncMongoClient[dict[str, Any]], AggregateStore[Holder], OutboxRelay]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    coll = client[settings.database("cards")]["holders"]
    relay = OutboxRelay(settings, [coll], name="cards")
    store = AggregateStore(coll, service="cards", state_type=Holder, on_saved=relay.notify)
    await store.create_indexes()
    return client, store, relay


async def test_an_event_round_trips_through_kafka_with_every_envelope_attribute(settings: Settings) -> None:
    client, store, relay = await make_store(settings)
    relay.start()
    cause = lost_event("P0", 7)
    try:
        outcome = await store.execute("P1", issue("P1", "6216610000000000001"), correlation_id="corr-1",
                                      cause=cause)
        [sent] = outcome.events
        records = await read_service_topic(settings, "cards", 1)
    finally:
        await relay.stop()
        await client.close()
    [record] = records
    got = from_record(record)
    assert got == sent
    assert record.key == b"P1"
    headers = dict(record.headers)
    for attr in ("specversion", "id", "source", "type", "time", "subject", "sequence", "partitionkey",
                 "correlationid", "causationid"):
        assert f"ce_{attr}" in headers, attr
    assert headers["ce_specversion"] == b"1.0" and headers["ce_source"] == b"/medcard/cards"
    assert headers["ce_id"] == sent.id.encode() and datetime.fromisoformat(headers["ce_time"].decode()) == sent.time
    assert headers["ce_type"] == b"cn.medcard.cards.CardIssued.v1"
    assert headers["ce_subject"] == b"6216610000000000001"
    assert headers["ce_sequence"] == b"1"
    assert headers["ce_partitionkey"] == b"P1"
    assert headers["ce_correlationid"] == b"corr-1"
    assert headers["ce_causationid"] == cause.id.encode()
    assert headers["content-type"] == b"application/json"


async def test_every_topic_and_dead_letter_topic_keeps_its_events_forever(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        names = [n for t in TOPICS.values() for n in (t.name(settings.namespace), t.dlq(settings.namespace))]
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
        partitions = {m["topic"]: len(m["partitions"]) for m in (await admin.describe_topics(names))}
    finally:
        await admin.close()
    retention = {}
    for response in described:
        for _code, _message, _type, name, entries in response.resources:
            retention[name] = next(e[1] for e in entries if e[0] == "retention.ms")
    assert retention == dict.fromkeys(names, "-1")
    assert partitions == {n: t.partitions for t in TOPICS.values()
                          for n in (t.name(settings.namespace), t.dlq(settings.namespace))}


async def test_a_command_accepted_while_the_broker_is_down_is_published_after_restart(
    settings: Settings, infra: Any
) -> None:
    client, store, relay = await make_store(settings)
    relay.start()
    await relay.wait_idle()
    await asyncio.to_thread(infra.controls.stop_kafka)
    try:
        # The command is accepted: state and event are durable in the aggregate document.
        for i in range(3):
            await store.execute("P9", issue("P9", f"62166100000000000{i}"), correlation_id=f"c{i}")
        doc = await store.get_doc("P9")
        assert doc is not None and len(doc["outbox"]) >= 1 and doc["pending"] is True
        await asyncio.sleep(1.0)
        assert relay.published == 0
    finally:
        await asyncio.to_thread(infra.controls.start_kafka)
    try:
        records = await read_service_topic(settings, "cards", 3, timeout=90)
        await eventually(lambda: _outbox_empty(store, "P9"), timeout=30)
    finally:
        await relay.stop()
        await client.close()
    assert [from_record(r).sequence for r in records] == [1, 2, 3]


async def _outbox_empty(store: AggregateStore[Holder], aggregate_id: str) -> bool:
    doc = await store.get_doc(aggregate_id)
    return doc is not None and doc["outbox"] == [] and doc["pending"] is False


def lost_event(person_id: str, sequence: int) -> CloudEvent:
    return new_event(
        CardLost(person_id=person_id, card_number="6216610000000000001", channel="online",
                 voucher=f"V{sequence}", business_date=date(2026, 1, 5)),
        source="/medcard/cards", partitionkey=person_id, sequence=sequence, correlationid="c", subject="6216",
    )


async def produce(settings: Settings, records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]],
                  topic: str | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic or topic_for_service("cards", settings.namespace), value, key=key,
                                         headers=headers)
    finally:
        await producer.stop()


async def test_a_duplicated_and_a_replayed_event_change_the_projection_once(settings: Settings) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    coll = client[settings.database("bank")]["losses"]

    async def handler(event: CloudEvent) -> None:
        await apply_once(coll, event.partitionkey, event, {"$inc": {"losses": 1}})

    first, second = lost_event("P1", 1), lost_event("P1", 2)
    # first is delivered twice (a producer retry that was not deduplicated), then second.
    await produce(settings, [to_record(first), to_record(first), to_record(second)])
    runner = ConsumerRunner(settings, service="bank", topics=[topic_for_service("cards", settings.namespace)],
                            handler=handler)
    runner.start()
    try:
        await eventually(lambda: _applied(runner, 3))
    finally:
        await runner.stop()
    # Replay: a new group reads the whole topic again into the same projection.
    replay = ConsumerRunner(settings, service="bank", topics=[topic_for_service("cards", settings.namespace)],
                            handler=handler, group_id=f"{settings.namespace}.replay")
    replay.start()
    try:
        await eventually(lambda: _applied(replay, 3))
    finally:
        await replay.stop()
    doc = await coll.find_one({"_id": "P1"})
    await client.close()
    assert doc is not None and doc["losses"] == 2


async def test_events_of_two_aggregates_creating_one_document_at_once_are_both_applied(settings: Settings) -> None:
    """Two upserts of a missing document race: one inserts, the other meets a duplicate key.
    That is not "already applied" (as it would be for a repeat); the second is applied too."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    coll = client[settings.database("notifications")]["recipients_race"]
    try:
        for round_ in range(40):
            person = f"P{round_}"
            registered = new_event(PersonRegistered(person_id=person, name="Li Wei", id_number_masked="110***1234",
                                                    id_number_digest="0" * 64, mobile="13800138000", unit_id=None),
                                   source="/medcard/identity", partitionkey=person, sequence=1, correlationid="c")
            lost = lost_event(person, 1)
            applied = await asyncio.gather(apply_once(coll, person, registered, {"$set": {"name": "Li Wei"}}),
                                           apply_once(coll, person, lost, {"$set": {"lost": True}}))
            assert applied == [True, True]
            doc = await coll.find_one({"_id": person})
            assert doc is not None and doc["name"] == "Li Wei" and doc["lost"] is True, doc
            # a repeat of either still changes nothing
            assert await apply_once(coll, person, lost, {"$set": {"lost": False}}) is False
    finally:
        await client.close()


async def _applied(runner: ConsumerRunner, n: int) -> bool:
    return runner.applied + runner.dead_lettered >= n


async def test_a_malformed_message_is_dead_lettered_with_its_reason_and_the_consumer_carries_on(
    settings: Settings,
) -> None:
    seen: list[str] = []

    async def handler(event: CloudEvent) -> None:
        seen.append(event.id)

    good = lost_event("P2", 1)
    bad_payload = to_record(lost_event("P2", 2))
    await produce(settings, [
        (b"P2", b"not json at all", [("ce_type", b"cn.medcard.cards.CardLost.v1")]),
        (b"P2", bad_payload[1].replace(b'"online"', b'"carrier-pigeon"'), bad_payload[2]),
        to_record(good),
    ])
    runner = ConsumerRunner(settings, service="bank", topics=[topic_for_service("cards", settings.namespace)],
                            handler=handler)
    runner.start()
    try:
        await eventually(lambda: _applied(runner, 3))
    finally:
        await runner.stop()
    assert seen == [good.id]
    dlq = await read_topic(settings, f"{topic_for_service('cards', settings.namespace)}.dlq",
                           until=lambda r: len(r) >= 2)
    reasons = [dict(r.headers)["dlq_reason"].decode() for r in dlq]
    assert "not JSON" in reasons[0]
    assert "data.channel" in reasons[1]
    assert all(dict(r.headers)["dlq_service"] == b"bank" for r in dlq)


async def test_one_keys_events_arrive_in_order_across_several_partitions(settings: Settings) -> None:
    client, store, relay = await make_store(settings)
    relay.start()
    keys = [f"P{k}" for k in range(8)]
    try:
        for i in range(10):
            await asyncio.gather(*(store.execute(k, issue(k, f"{k}-{i}"), correlation_id="c") for k in keys))
        records = await read_service_topic(settings, "cards", 80)
    finally:
        await relay.stop()
        await client.close()
    assert len({r.partition for r in records}) > 1
    by_key: dict[bytes, list[int]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(r.key, []).append(from_record(r).sequence)
    assert all(seqs == list(range(1, 11)) for seqs in by_key.values()), by_key


async def test_one_event_applied_to_many_aggregates_in_one_bulk_write_changes_each_once(settings: Settings) -> None:
    """``execute_many`` (the month end's path): one guarded write per aggregate in one
    bulk_write; an aggregate changed by another writer meanwhile still gets the change
    exactly once, a replay changes nothing, and every event reaches Kafka."""
    client, store, relay = await make_store(settings)
    relay.start()
    ids = [f"M{i}" for i in range(30)]
    try:
        for i, pid in enumerate(ids):
            await store.execute(pid, issue(pid, f"62166100000{i:08d}"), correlation_id="setup")
        cause = lost_event("clock", 1)
        docs = [await store.get_doc(pid) for pid in ids]
        # Another writer changes M5 between the read and the bulk write: its guard fails.
        await store.execute("M5", issue("M5", "6216610000099999999"), correlation_id="other")
        bulk = {pid: issue(pid, f"bulk-{pid}") for pid in ids}

        def decide(state: Holder | None) -> Decision[Holder]:
            assert state is not None
            return bulk[state.person_id](state)

        written = await store.execute_many([d for d in docs if d], decide, correlation_id="bulk", cause=cause)
        again = await store.execute_many([d for d in [await store.get_doc(p) for p in ids] if d], decide,
                                         correlation_id="bulk", cause=cause)
        states = {pid: await store.get(pid) for pid in ids}
        records = await read_service_topic(settings, "cards", 30 + 1 + 30)
        await relay.wait_idle()
    finally:
        await relay.stop()
        await client.close()
    assert (written, again) == (30, 0)
    for pid, state in states.items():
        assert state is not None and state.cards.count(f"bulk-{pid}") == 1, (pid, state)
    assert states["M5"].cards[-2:] == ["6216610000099999999", "bulk-M5"]  # type: ignore[union-attr]
    published = [from_record(r) for r in records]
    bulk_events = [e for e in published if e.correlationid == "bulk"]
    assert sorted(e.partitionkey for e in bulk_events) == sorted(ids)
    assert {e.partitionkey: e.sequence for e in bulk_events}["M5"] == 3


def card_event(person_id: str, sequence: int, number: str) -> CloudEvent:
    return new_event(CardIssued(person_id=person_id, card_number=number, agent_bank="BOC"),
                     source="/medcard/cards", partitionkey=person_id, sequence=sequence, correlationid="c",
                     subject=number)


def refusing(event: CloudEvent):
    """The tests' domain: a card number starting with "refuse" breaks a rule."""
    number = event.data.card_number  # type: ignore[attr-defined]
    inner = issue(event.partitionkey, number)

    def decide(state: Holder | None) -> Decision[Holder]:
        if number.startswith("refuse"):
            raise ValueError(f"card {number} refused")
        return inner(state)
    return decide


async def test_a_consumer_batch_is_applied_by_one_write_per_aggregate_exactly_once(settings: Settings) -> None:
    """``batch_handler`` + ``execute_batch``: each aggregate's events are applied in log
    order, a redelivery is a no-op, a refused event is dead-lettered with its reason (the
    next event of that aggregate still applies), a malformed record too; every event
    reaches Kafka with contiguous sequences; a replay by a new group changes nothing."""
    client, store, relay = await make_store(settings)
    relay.start()
    persons = [f"B{i}" for i in range(40)]
    plan: dict[str, list[CloudEvent]] = {
        p: [card_event(p, s, f"{p}-{s}" if (p, s) != ("B7", 2) else "refuse-B7") for s in (1, 2, 3)]
        for p in persons
    }
    records = [to_record(e) for p in persons for e in plan[p]]
    records.insert(5, to_record(plan["B1"][0]))  # a redelivery
    records.insert(9, (b"B3", b"{not json", []))
    topics = [topic_for_service("identity", settings.namespace)]  # the store publishes to cards
    await produce(settings, records, topic=topics[0])
    batches: list[int] = []

    async def batch(events: list[CloudEvent]) -> list[Exception | None]:
        batches.append(len(events))
        done = await store.execute_batch([(e.partitionkey, refusing(e), e) for e in events])
        return [a.error for a in done]

    async def one(event: CloudEvent) -> None:
        raise AssertionError("the batch handler applies everything here")

    try:
        runner = ConsumerRunner(settings, service="bank", topics=topics, handler=one, batch_handler=batch)
        runner.start()
        try:
            await eventually(lambda: _applied(runner, len(records)))
        finally:
            await runner.stop()
        first_run = list(batches)
        published = await read_service_topic(settings, "cards", 40 * 3 - 1)
        await relay.wait_idle()
        before = {p: await store.get_doc(p) for p in persons}
        replay = ConsumerRunner(settings, service="bank", topics=topics, handler=one, batch_handler=batch,
                                group_id=f"{settings.namespace}.replay")
        replay.start()
        try:
            await eventually(lambda: _applied(replay, len(records)))
        finally:
            await replay.stop()
        after = {p: await store.get_doc(p) for p in persons}
        dlq = await read_topic(settings, f"{topics[0]}.dlq", until=lambda r: len(r) >= 3)
    finally:
        await relay.stop()
        await client.close()
    assert sum(first_run) >= len(records) - 1 and max(first_run) > 1, first_run
    assert (runner.applied, runner.dead_lettered) == (len(records) - 2, 2)
    for p in persons:
        want = [f"{p}-1", f"{p}-3"] if p == "B7" else [f"{p}-1", f"{p}-2", f"{p}-3"]
        assert Holder.model_validate(before[p]).cards == want, p
        assert after[p] == before[p], f"the replay changed {p}"
    by_key: dict[str, list[int]] = {}
    for e in map(from_record, published):
        by_key.setdefault(e.partitionkey, []).append(e.sequence)
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in by_key.values()), by_key
    assert sum(map(len, by_key.values())) == 40 * 3 - 1
    # The refused event once (in the replay it is older than what B7 has applied); the
    # malformed record once per group.
    reasons = sorted(dict(r.headers)["dlq_reason"].decode() for r in dlq)
    assert len(reasons) == 3 and reasons[0].startswith("ValueError: card refuse-B7 refused"), reasons
    assert all(r.startswith("unparseable") for r in reasons[1:]), reasons


async def test_a_batch_write_that_races_another_writer_applies_each_event_once(settings: Settings) -> None:
    """If another writer changes an aggregate between the batch's read and its bulk write,
    the guard fails and that group is applied again one by one: every event still lands
    exactly once, beside the other writer's change."""
    client, store, relay = await make_store(settings)
    relay.start()
    raced: list[str] = []
    original = store.get_docs

    async def racing_get_docs(aggregate_ids: list[str]) -> list[dict[str, Any] | None]:
        docs = await original(aggregate_ids)
        if "R5" in aggregate_ids and not raced:
            raced.append("R5")
            await store.execute("R5", issue("R5", "other"), correlation_id="other")
        return docs

    store.get_docs = racing_get_docs  # type: ignore[method-assign]
    persons = [f"R{i}" for i in range(12)]
    try:
        for p in persons:
            await store.execute(p, issue(p, f"{p}-0"), correlation_id="setup")
        events = [card_event(p, 1, f"{p}-1") for p in persons] + [card_event("R5", 2, "R5-2")]
        first = await store.execute_batch([(e.partitionkey, refusing(e), e) for e in events])
        again = await store.execute_batch([(e.partitionkey, refusing(e), e) for e in events])
        states = {p: await store.get(p) for p in persons}
    finally:
        await relay.stop()
        await client.close()
    assert raced == ["R5"]
    assert [a.error for a in first] == [None] * len(events) and not any(a.duplicate for a in first)
    assert all(a.duplicate for a in again)
    assert states["R5"].cards == ["R5-0", "other", "R5-1", "R5-2"]  # type: ignore[union-attr]
    assert all(states[p].cards == [f"{p}-0", f"{p}-1"] for p in persons if p != "R5")  # type: ignore[union-attr]


async def test_a_fresh_batch_inserts_new_aggregates_without_a_read_and_a_redelivery_changes_nothing(
    settings: Settings,
) -> None:
    """``execute_batch(fresh=True)`` (aggregates whose ids derive from their cause: the
    messages of notifications) inserts without reading first; when one of the group is
    there already (a redelivery), the insert of that one fails and the group is applied one
    by one, where each event already applied is a duplicate: every event lands once."""
    client, store, relay = await make_store(settings)
    relay.start()
    reads: list[list[str]] = []
    original = store.get_docs

    async def counted_get_docs(aggregate_ids: list[str]) -> list[dict[str, Any] | None]:
        reads.append(list(aggregate_ids))
        return await original(aggregate_ids)

    store.get_docs = counted_get_docs  # type: ignore[method-assign]
    persons = [f"F{i}" for i in range(10)]
    try:
        first = [card_event(p, 1, f"{p}-1") for p in persons[:6]]
        created = await store.execute_batch([(e.partitionkey, refusing(e), e) for e in first], fresh=True)
        assert reads == [], "a fresh batch reads nothing before its insert"
        assert not any(a.duplicate or a.error for a in created)
        mixed = first[3:] + [card_event(p, 1, f"{p}-1") for p in persons[6:]]  # F3-F5 again, F6-F9 new
        again = await store.execute_batch([(e.partitionkey, refusing(e), e) for e in mixed], fresh=True)
        states = {p: await store.get(p) for p in persons}
    finally:
        await relay.stop()
        await client.close()
    assert [a.duplicate for a in again] == [True] * 3 + [False] * 4
    assert all(a.error is None for a in again)
    assert all(states[p].cards == [f"{p}-1"] for p in persons)  # type: ignore[union-attr]
