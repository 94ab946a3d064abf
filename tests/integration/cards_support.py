"""Helpers for the identity and cards integration tests: act as the bank by publishing its
events, register people through identity's API, read one aggregate's events from Kafka."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from services.identity.config import IdentitySettings
from shared.bounded import within
from shared.codec import from_record, to_record
from shared.events import CloudEvent, EventData, OnlineAccountCodeIssued, new_event
from shared.ids import make_id_number
from shared.security import ONE_TIME_CODE_PURPOSE, SecretBox
from shared.settings import Settings
from shared.topics import topic_for_service
from tests.helpers import KAFKA_SECONDS, eventually, read_topic

OPERATOR_PASSWORD = "operator-test-password"


def identity_settings(settings: Settings) -> IdentitySettings:
    """The test settings plus a bootstrap operator whose password the tests know."""
    return IdentitySettings(**settings.model_dump(), identity_bootstrap_operator_password=OPERATOR_PASSWORD)


async def publish_as_bank(settings: Settings, data: EventData, *, person_id: str, sequence: int) -> CloudEvent:
    """Publish one bank event, keyed by the person (the bank's account aggregate)."""
    event = new_event(data, source="/medcard/bank", partitionkey=person_id, sequence=sequence,
                      correlationid=f"bank-{uuid.uuid4().hex[:8]}")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, acks="all")
    await within(producer.start(), KAFKA_SECONDS, "a test producer starting (Kafka)")
    try:
        key, value, headers = to_record(event)
        await producer.send_and_wait(topic_for_service("bank", settings.namespace), value, key=key, headers=headers)
    finally:
        await within(producer.stop(), KAFKA_SECONDS, "a test producer stopping (Kafka)")
    return event


async def events_of(settings: Settings, service: str, key: str, count: int, timeout: float = 30.0) -> list[CloudEvent]:
    """The first ``count`` events of one aggregate on a service's topic, in topic order."""
    def mine(records: list[Any]) -> list[Any]:
        return [r for r in records if r.key == key.encode()]
    records = await read_topic(settings, topic_for_service(service, settings.namespace),
                               until=lambda rs: len(mine(rs)) >= count, timeout=timeout)
    return [from_record(r) for r in sorted(mine(records), key=lambda r: r.offset)]


def names(events: list[CloudEvent]) -> list[str]:
    return [e.name for e in events]


def id_number(serial: int, birth: date = date(1985, 6, 15)) -> str:
    return make_id_number("110105", birth, serial)


async def register_person(identity: httpx.AsyncClient, clerk: dict[str, str], *, name: str = "Wang Fang",
                          number: str, mobile: str = "13800138000") -> str:
    """Register a person (with an employer) at the agency counter; returns the person id."""
    unit = await identity.post("/v1/units", json={"name": "Hongxing Machinery"}, headers=clerk)
    assert unit.status_code == 201, unit.text
    resp = await identity.post("/v1/persons", headers=clerk, json={
        "name": name, "id_number": number, "mobile": mobile, "household_number": "110105001234",
        "unit_id": unit.json()["unit_id"],
    })
    assert resp.status_code == 201, resp.text
    return str(resp.json()["person_id"])


async def sms_codes(settings: Settings, person_id: str, count: int = 1, timeout: float = 30.0) -> list[str]:
    """The one-time codes identity issued for the person, oldest first, opened as the SMS
    channel opens them (with the one-time-code key): what reaches the registered mobile."""
    box = SecretBox(settings.otp_key, ONE_TIME_CODE_PURPOSE)

    def issued(records: list[Any]) -> list[CloudEvent]:
        mine = [from_record(r) for r in sorted(records, key=lambda r: r.offset) if r.key == person_id.encode()]
        return [e for e in mine if isinstance(e.data, OnlineAccountCodeIssued)]
    records = await read_topic(settings, topic_for_service("identity", settings.namespace),
                               until=lambda rs: len(issued(rs)) >= count, timeout=timeout)
    return [box.open(e.data.code_sealed, bound_to=person_id) for e in issued(records)]  # type: ignore[attr-defined]


async def open_account(identity: httpx.AsyncClient, settings: Settings, *, person_id: str, number: str,
                       account: str, password: str = "s3cret-pass", name: str = "Wang Fang",
                       nth_code: int = 1) -> httpx.Response:
    """Open the person's online account as a person does: ask for a code (the person's
    ``nth_code``-th), read it on the registered mobile, give it back with the chosen account
    number and password."""
    asked = await identity.post("/v1/accounts/codes", json={"name": name, "id_number": number})
    assert asked.status_code == 202, asked.text
    code = (await sms_codes(settings, person_id, nth_code))[nth_code - 1]
    return await identity.post("/v1/accounts", json={"name": name, "id_number": number, "code": code,
                                                     "account_number": account, "password": password})


async def open_account_and_login(identity: httpx.AsyncClient, settings: Settings, person_id: str, number: str,
                                 account: str, name: str = "Wang Fang", nth_code: int = 1) -> dict[str, str]:
    """Open the person's online account and log in; returns the cardholder's auth header."""
    opened = await open_account(identity, settings, person_id=person_id, number=number, account=account, name=name,
                                nth_code=nth_code)
    assert opened.status_code == 201, opened.text
    login = await identity.post("/v1/login", json={"account_number": account, "password": "s3cret-pass"})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def wait_known_to_cards(cards: httpx.AsyncClient, clerk: dict[str, str], person_id: str) -> None:
    """Until identity's PersonRegistered has reached the cards service through Kafka."""
    async def known() -> bool:
        return (await cards.get(f"/v1/persons/{person_id}/cards", headers=clerk)).status_code == 200
    await eventually(known, timeout=30)


async def cards_doc(settings: Settings, person_id: str) -> dict[str, Any]:
    """The cardholder's document in the cards service's own database."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:
        doc = await client[settings.database("cards")]["cardholders"].find_one({"_id": person_id})
    finally:
        await client.close()
    assert doc is not None
    return doc


async def business_date(settings: Settings, service: str) -> str | None:
    """The business date a service has applied from the clock topic."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:
        doc = await client[settings.database(service)]["clock"].find_one({"_id": "clock"})
    finally:
        await client.close()
    return doc["date"] if doc else None


async def cards_business_date(settings: Settings) -> str | None:
    """The business date the cards service has applied from the clock topic."""
    return await business_date(settings, "cards")
