"""Helpers for the bank's integration tests: the tests play identity, cards and the
clock by publishing those services' events, and drive the bank over HTTP."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from datetime import date, timedelta
from types import TracebackType
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from shared.bounded import within
from shared.calendar import last_day_of_month
from shared.codec import from_record, to_record
from shared.events import (
    CardIssued,
    CloudEvent,
    ContributionPaid,
    EventData,
    MonthEnded,
    PersonRegistered,
    new_event,
)
from shared.ids import id_digest, make_id_number, mask_id_number, new_card_number, new_id
from shared.settings import Settings
from shared.topics import topic_for_service
from tests.helpers import KAFKA_SECONDS, auth, eventually, read_topic

_serials = itertools.count(1)


class EventSource:
    """Publishes other services' events with correct per-aggregate sequence numbers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sequences: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.id_numbers: dict[str, str] = {}
        """The ID number of each person registered here (what the holder would show)."""
        self.producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True,
                                         acks="all")

    async def __aenter__(self) -> EventSource:
        await within(self.producer.start(), KAFKA_SECONDS, "the event source's producer starting (Kafka)")
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await within(self.producer.stop(), KAFKA_SECONDS, "the event source's producer stopping (Kafka)")

    async def publish(self, data: EventData, key: str) -> CloudEvent:
        """Publish ``data`` as the next event of aggregate ``key`` of its owning service."""
        self.sequences[(data.service, key)] += 1
        event = new_event(data, source=f"/medcard/{data.service}", partitionkey=key,
                          sequence=self.sequences[(data.service, key)], correlationid=new_id("corr-"),
                          subject=getattr(data, "card_number", None))
        await self.send(event)
        return event

    async def send(self, event: CloudEvent) -> None:
        """Send an already published event again (a duplicate delivery)."""
        key, value, headers = to_record(event)
        await self.producer.send_and_wait(topic_for_service(event.service, self.settings.namespace), value,
                                          key=key, headers=headers)

    async def person(self) -> tuple[str, str]:
        """Register a new person; returns (person_id, id_number)."""
        person_id = new_id("P")
        id_number = make_id_number("110105", date(1980, 1, 1) + timedelta(days=next(_serials)), 7)
        await self.publish(PersonRegistered(
            person_id=person_id, name="Li Wei", id_number_masked=mask_id_number(id_number),
            id_number_digest=id_digest(self.settings.id_digest_key, id_number), mobile="13800138000",
            unit_id="U1"), person_id)
        self.id_numbers[person_id] = id_number
        return person_id, id_number

    async def card(self, person_id: str, replaces: str | None = None) -> str:
        number = new_card_number()
        await self.publish(CardIssued(person_id=person_id, card_number=number, agent_bank="BOC",
                                      replaces=replaces), person_id)
        return number

    async def contribution(self, person_id: str, month: str, amount_fen: int) -> CloudEvent:
        return await self.publish(ContributionPaid(contribution_id=new_id("C"), person_id=person_id, unit_id="U1",
                                                   month=month, amount_fen=amount_fen), person_id)

    async def month_end(self, month: str) -> CloudEvent:
        return await self.publish(MonthEnded(month=month, closing_date=last_day_of_month(month)), "clock")


class BankClient:
    """The bank's HTTP API with the right token for each call."""

    def __init__(self, client: httpx.AsyncClient, settings: Settings) -> None:
        self.http = client
        self.settings = settings

    def as_(self, role: str, sub: str = "u-test", person_id: str | None = None) -> dict[str, str]:
        return auth(self.settings, role, sub=sub, person_id=person_id)  # type: ignore[arg-type]

    async def account(self, person_id: str) -> dict[str, Any] | None:
        r = await self.http.get(f"/v1/accounts/{person_id}", headers=self.as_("teller"))
        return r.json() if r.status_code == 200 else None

    async def wait_account(self, person_id: str, check: Callable[[dict[str, Any]], bool] = lambda a: True,
                           timeout: float = 20.0) -> dict[str, Any]:
        """Poll the account until it exists and ``check`` holds; return it."""
        seen: list[dict[str, Any]] = []

        async def ready() -> bool:
            account = await self.account(person_id)
            seen[:] = [account] if account is not None else []
            return account is not None and check(account)
        await eventually(ready, timeout=timeout)
        return seen[0]

    async def merchant(self, merchant_id: str, kind: str = "pharmacy", designated: bool = True) -> None:
        r = await self.http.post("/v1/merchants", headers=self.as_("operator"), json={
            "merchant_id": merchant_id, "name": f"{kind} {merchant_id}", "kind": kind, "designated": designated})
        assert r.status_code == 201, r.text

    async def set_pin(self, card_number: str, pin: str, id_number: str) -> None:
        """A teller sets a card's first password, on the holder's ID card."""
        r = await self.http.put(f"/v1/cards/{card_number}/password", headers=self.as_("teller"),
                                json={"pin": pin, "id_number": id_number})
        assert r.status_code == 200, r.text

    async def swipe(self, card_number: str, pin: str, merchant_id: str, amount_fen: int,
                    kind: str = "purchase") -> dict[str, Any]:
        """A POS authorisation from the merchant's own terminal; returns the answer."""
        r = await self.http.post("/v1/pos/authorisations", headers=self.as_("merchant", sub=merchant_id), json={
            "transaction_id": new_id("T"), "card_number": card_number, "pin": pin, "merchant_id": merchant_id, "amount_fen": amount_fen,
            "kind": kind})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def inquire(self, card_number: str, pin: str, merchant_id: str) -> dict[str, Any]:
        """A POS balance inquiry from the merchant's own terminal; returns the answer."""
        r = await self.http.post("/v1/pos/balance-inquiries", headers=self.as_("merchant", sub=merchant_id),
                                 json={"card_number": card_number, "pin": pin, "merchant_id": merchant_id})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


async def funded_account(src: EventSource, bank: BankClient, amount_fen: int, month: str,
                         pin: str = "246810") -> tuple[str, str]:
    """A person with a card, a password and ``amount_fen`` pending for ``month``.
    The caller publishes the month end. Returns (person_id, card_number)."""
    person_id, id_number = await src.person()
    card = await src.card(person_id)
    await src.contribution(person_id, month, amount_fen)
    await bank.wait_account(person_id, lambda a: bool(a["pending_contributions"]))
    await bank.set_pin(card, pin, id_number)
    return person_id, card


async def credited_account(src: EventSource, bank: BankClient, amount_fen: int, month: str = "2026-01",
                           pin: str = "246810") -> tuple[str, str]:
    """``funded_account`` after its month end: ``amount_fen`` credited. Returns (person_id, card_number)."""
    person_id, card = await funded_account(src, bank, amount_fen, month, pin)
    await src.month_end(month)
    await bank.wait_account(person_id, lambda a: a["balance_fen"] == amount_fen)
    return person_id, card


async def bank_events(settings: Settings, until: Callable[[list[CloudEvent]], bool],
                      timeout: float = 20.0) -> list[CloudEvent]:
    """The bank's published events, read from the start until ``until(events)`` holds."""
    records = await read_topic(settings, topic_for_service("bank", settings.namespace),
                               until=lambda rs: until([from_record(r) for r in rs]), timeout=timeout)
    return [from_record(r) for r in records]


def named(events: list[CloudEvent], name: str) -> list[CloudEvent]:
    return [e for e in events if e.name == name]
