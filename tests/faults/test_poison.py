"""A poison message on every topic, three kinds (undecodable bytes, an unknown event type, a
payload that breaks its schema), followed on the same partition by a valid event. Every
consuming service dead-letters each poison with its reason and applies the valid event."""

from __future__ import annotations

import contextlib
import json
from datetime import date
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from services.bank.app import create as create_bank
from services.cards.app import create as create_cards
from services.notifications.app import create as create_notifications
from services.notifications.webhooks import event_key
from shared.codec import to_record
from shared.events import (
    BusinessDateAdvanced,
    CardIssued,
    CloudEvent,
    EventData,
    MerchantRegistered,
    NotificationSent,
    PersonRegistered,
    new_event,
)
from shared.ids import id_digest, make_id_number, mask_id_number, new_card_number, new_id
from shared.settings import Settings
from shared.topics import TOPICS
from tests.faults.support import as_role, read_topics
from tests.helpers import eventually, running_service

pytestmark = pytest.mark.infra

CONSUMERS: dict[str, list[tuple[str, str]]] = {
    "identity": [("cards", ""), ("bank", ""), ("notifications", "")],
    "clock": [("cards", ""), ("bank", ".clock"), ("notifications", "")],
    "cards": [("bank", ""), ("notifications", "")],
    "bank": [("cards", ""), ("notifications", "")],
    "notifications": [("notifications", "")],
}
"""Topic -> (service, consumer group suffix) of every group that reads it."""


def valid_events(settings: Settings, person: str, card: str, merchant: str) -> dict[str, CloudEvent]:
    """One valid event per topic, each the first of a fresh aggregate."""
    number = make_id_number("110105", date(1979, 3, 4), 11)

    def event(data: EventData, key: str) -> CloudEvent:
        return new_event(data, source=f"/medcard/{data.service}", partitionkey=key, sequence=1,
                         correlationid=new_id("corr-"))
    return {
        "identity": event(PersonRegistered(
            person_id=person, name="Zhao Lei", id_number_masked=mask_id_number(number),
            id_number_digest=id_digest(settings.id_digest_key, number), mobile="13900139000", unit_id="U1"), person),
        "clock": event(BusinessDateAdvanced(date=date(2026, 3, 2), previous_date=date(2026, 2, 27)), "clock"),
        "cards": event(CardIssued(person_id=person, card_number=card, agent_bank="BOC"), person),
        "bank": event(MerchantRegistered(merchant_id=merchant, name="Beijing Hospital", kind="hospital",
                                         designated=True), merchant),
        "notifications": event(NotificationSent(person_id=person, message_id="M1", template="card_issued",
                                                channel="sms", cause_event_id="E1"), "M1"),
    }


def poisons(topic: str, valid: CloudEvent) -> list[tuple[str, tuple[bytes, bytes, list[tuple[str, bytes]]]]]:
    """(what its dead letter's reason must say, the record) for the three poisons of a topic,
    keyed like the valid event so that they sit before it on its partition."""
    key, value, headers = to_record(valid)
    data = json.loads(value)
    first_field = next(iter(data))
    data[first_field] = [1, 2]
    unknown = [(k, f"cn.medcard.{topic}.Teleported.v1".encode() if k == "ce_type" else v) for k, v in headers]
    return [
        ("not JSON", (key, b"\xff\xfe\x00\x9c poison", headers)),
        ("unknown event type", (key, value, unknown)),
        (f"data.{first_field}", (key, json.dumps(data).encode(), headers)),
    ]


async def test_a_poison_message_on_every_topic_is_dead_lettered_and_the_partition_moves_on(
    settings: Settings,
) -> None:
    person, card, merchant = new_id("P"), new_card_number(), new_id("M")
    valid = valid_events(settings, person, card, merchant)
    async with contextlib.AsyncExitStack() as stack:
        cards = await stack.enter_async_context(running_service(create_cards, settings))
        await stack.enter_async_context(running_service(create_bank, settings))
        notifications = await stack.enter_async_context(running_service(create_notifications, settings))
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, acks="all")
        await producer.start()
        placed: dict[str, tuple[int, list[tuple[int, str]], int]] = {}  # topic -> partition, poisons, valid offset
        try:
            for topic, event in valid.items():
                name = TOPICS[topic].name(settings.namespace)
                sent = []
                for reason, (key, value, headers) in poisons(topic, event):
                    meta = await producer.send_and_wait(name, value, key=key, headers=headers)
                    sent.append((meta.partition, meta.offset, reason))
                key, value, headers = to_record(event)
                meta = await producer.send_and_wait(name, value, key=key, headers=headers)
                assert {p for p, _, _ in sent} == {meta.partition}
                placed[topic] = (meta.partition, [(o, r) for _, o, r in sent], meta.offset)
        finally:
            await producer.stop()

        # Each valid event is applied by every service that reads its topic.
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
        stack.push_async_callback(mongo.close)
        db = {s: mongo[settings.database(s)] for s in ("cards", "bank", "notifications")}
        operator = as_role(settings, "operator")

        async def applied() -> bool:
            checks = [
                await _status(cards, f"/v1/persons/{person}/cards", as_role(settings, "clerk")) == 200,
                await _status(notifications, f"/v1/recipients/{person}", operator) == 200,
                await db["bank"]["accounts"].find_one({"_id": person, "name": "Zhao Lei",
                                                       "cards.number": card}) is not None,
                await db["notifications"]["recipients"].find_one({"_id": person, f"cards.{card}": "pending_activation"})
                is not None,
                await db["notifications"]["merchants"].find_one({"_id": merchant}) is not None,
                *[await db[s]["clock"].find_one({"_id": "clock", "date": "2026-03-02"}) is not None
                  for s in ("cards", "bank")],
                await db["notifications"]["event_log"].count_documents(
                    {"_id": {"$in": [event_key(valid[s]) for s in ("clock", "notifications", "bank")]}}) == 3,
            ]
            return all(checks)
        await eventually(applied, timeout=90, interval=0.5)

        # Every group committed past the valid event: its partition moved on.
        async def moved_on() -> bool:
            admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
            await admin.start()
            try:
                for topic, groups in CONSUMERS.items():
                    partition, _, valid_offset = placed[topic]
                    for service, suffix in groups:
                        offsets = await admin.list_consumer_group_offsets(settings.group_id(service) + suffix)
                        committed = {tp.partition: m.offset for tp, m in offsets.items()
                                     if tp.topic == TOPICS[topic].name(settings.namespace)}
                        if committed.get(partition, -1) <= valid_offset:
                            return False
            finally:
                await admin.close()
            return True
        await eventually(moved_on, timeout=60, interval=0.5)

        # Each poison dead-lettered once by each consuming service, with its reason and its place.
        for topic, groups in CONSUMERS.items():
            partition, sent, _ = placed[topic]
            letters = await read_topics(settings, [topic], dlq=True)
            by_service: dict[str, list[tuple[int, str]]] = {}
            for r in letters:
                h = {k: v.decode(errors="replace") for k, v in r.headers}
                assert h["dlq_topic"] == TOPICS[topic].name(settings.namespace)
                assert int(h["dlq_partition"]) == partition
                by_service.setdefault(h["dlq_service"], []).append((int(h["dlq_offset"]), h["dlq_reason"]))
                original = [v for (o, _), (_, (_, v, _)) in zip(sent, poisons(topic, valid[topic]), strict=True)
                            if o == int(h["dlq_offset"])]
                assert original == [r.value], "the dead letter carries the original bytes"
            assert sorted(by_service) == sorted(s for s, _ in groups), (topic, by_service)
            for service, got in by_service.items():
                assert [o for o, _ in sorted(got)] == [o for o, _ in sent], (topic, service, got)
                for (_, reason), (_, expected) in zip(sorted(got), sent, strict=True):
                    assert expected in reason, (topic, service, reason, expected)


async def _status(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> int:
    return (await client.get(path, headers=headers)).status_code
