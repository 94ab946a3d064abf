"""The business clock as every service follows it, over the real broker and database: a clock
advance answers once cards, the bank and notifications have applied the new date, so a
command sent at once after it is dated with the new day, by the replica that applied it and
by one that only reads it (and reuses its read for a moment); every service tells its business
date on ``/ready``; and an advance names the services that had not applied it."""

from __future__ import annotations

import contextlib
import time
from datetime import date, timedelta

import httpx
import pytest

import shared.clock
from services.bank.app import create as create_bank
from services.cards.app import create as create_cards
from services.identity.app import create as create_identity
from services.notifications.app import create as create_notifications
from shared.events import CloudEvent
from shared.settings import Settings
from tests.helpers import auth, eventually, running_service

from .bank_support import BankClient, EventSource, bank_events, named
from .cards_support import id_number, identity_settings, wait_known_to_cards

pytestmark = pytest.mark.infra
ADVANCES = 100
START = date(2026, 1, 23)
HOSPITAL = "M-HO-0001"


async def test_a_command_sent_at_once_after_each_of_100_advances_carries_the_new_date(settings: Settings) -> None:
    """Two bank replicas: one applies the clock topic (its group has one partition), the other
    dates its swipes with the date it reads, each swipe right after one before the advance."""
    operator, clerk = auth(settings, "operator"), auth(settings, "clerk")
    async with contextlib.AsyncExitStack() as stack:
        identity = await stack.enter_async_context(running_service(create_identity, identity_settings(settings)))
        cards = await stack.enter_async_context(running_service(create_cards, settings))
        bank = await stack.enter_async_context(running_service(create_bank, settings))
        replica = await stack.enter_async_context(running_service(create_bank, settings))
        notifications = await stack.enter_async_context(running_service(create_notifications, settings))
        services = {"identity": identity, "cards": cards, "bank": bank, "bank replica": replica,
                    "notifications": notifications}

        started = await identity.post("/v1/clock/advance", json={"start": START.isoformat(), "days": 1},
                                      headers=operator)
        assert started.status_code == 200, started.text
        merchant = await bank.post("/v1/merchants", headers=operator, json={
            "merchant_id": HOSPITAL, "name": "Peking Union Hospital", "kind": "hospital", "designated": True})
        assert merchant.status_code == 201, merchant.text
        unit = (await identity.post("/v1/units", json={"name": "Hongxing Machinery"}, headers=clerk)).json()
        people = []
        for i in range(ADVANCES + 1):
            person = await identity.post("/v1/persons", headers=clerk, json={
                "name": "Wang Fang", "id_number": id_number(100 + i), "mobile": "13800138000",
                "household_number": f"1101050{i:05d}", "unit_id": unit["unit_id"]})
            assert person.status_code == 201, person.text
            people.append(person.json()["person_id"])
        await wait_known_to_cards(cards, clerk, people[-1])
        first = await cards.post("/v1/cards", json={"person_id": people[0]}, headers=clerk)
        assert first.status_code == 201, first.text
        card = first.json()["card_number"]
        terminal = auth(settings, "merchant", sub=HOSPITAL)

        dated: dict[str, str] = {}  # the bank's authorisation id -> the business date it was answered on
        slowest = 0.0
        for i in range(1, ADVANCES + 1):
            sent = time.perf_counter()
            moved = await identity.post("/v1/clock/advance", json={"days": 1}, headers=operator)
            slowest = max(slowest, time.perf_counter() - sent)
            assert moved.status_code == 200, moved.text
            day = (START + timedelta(days=1 + i)).isoformat()
            assert (moved.json()["date"], moved.json()["applied_everywhere"], moved.json()["services_behind"]) == (
                day, True, []), moved.json()

            # At once: the agency issues a card, a terminal tries a cash withdrawal (refused, 57).
            issued = await cards.post("/v1/cards", json={"person_id": people[i]}, headers=clerk)
            assert issued.status_code == 201, issued.text
            assert issued.json()["issued_on"] == day
            for n, terminal_bank in enumerate((bank, replica)):
                swiped = await terminal_bank.post("/v1/pos/authorisations", headers=terminal, json={
                    "card_number": card, "pin": "000000", "merchant_id": HOSPITAL, "amount_fen": 100,
                    "kind": "cash_withdrawal", "transaction_id": f"T-advance-{i}-{n}"})
                assert swiped.status_code == 200 and swiped.json()["response_code"] == "57", swiped.text
                dated[swiped.json()["authorisation_id"]] = day
            assert {name: await told_date(client) for name, client in services.items()} == dict.fromkeys(services, day)
        print(f"{ADVANCES} advances, the slowest answered in {slowest * 1000:.0f} ms")

        def all_declined(events: list[CloudEvent]) -> bool:
            return len(named(events, "PurchaseDeclined")) >= 2 * ADVANCES
        declined = named(await bank_events(settings, all_declined, timeout=60), "PurchaseDeclined")
    assert {e.data.authorisation_id: e.data.business_date.isoformat() for e in declined} == dated  # type: ignore[attr-defined]


async def test_a_replica_reusing_its_read_of_the_date_dates_a_command_after_an_advance_with_the_new_day(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Here a replica reuses the date it read for a whole second (0.1 s otherwise): the bank
    replica that does not apply the clock reads it just before each advance, yet a swipe sent as
    soon as the advance answers carries the new day (identity answers once that second is over)."""
    monkeypatch.setattr(shared.clock, "DATE_REUSE_SECONDS", 1.0)
    operator = auth(settings, "operator")
    async with EventSource(settings) as src, \
            running_service(create_identity, identity_settings(settings)) as identity, \
            running_service(create_bank, settings) as one, running_service(create_bank, settings) as two:
        banks = (BankClient(one, settings), BankClient(two, settings))
        await banks[0].merchant(HOSPITAL, kind="hospital")
        person_id, _ = await src.person()
        card = await src.card(person_id)
        for bank in banks:
            await bank.wait_account(person_id)
        dated: dict[str, str] = {}
        for i in range(5):
            for bank in banks:
                await told_date(bank.http)  # the replica that only reads the date reads it now
            moved = await identity.post("/v1/clock/advance", headers=operator,
                                        json={"days": 1} | ({"start": START.isoformat()} if i == 0 else {}))
            assert moved.status_code == 200, moved.text
            for bank in banks:
                swiped = await bank.swipe(card, "000000", HOSPITAL, 100, kind="cash_withdrawal")
                assert swiped["response_code"] == "57", swiped
                dated[swiped["authorisation_id"]] = moved.json()["date"]
        declined = named(await bank_events(settings, lambda es: len(named(es, "PurchaseDeclined")) >= len(dated)),
                         "PurchaseDeclined")
    assert {e.data.authorisation_id: e.data.business_date.isoformat() for e in declined} == dated  # type: ignore[attr-defined]


async def told_date(client: httpx.AsyncClient) -> str:
    """The business date a service tells on /ready (asked again while its database check
    does not answer in time on a loaded machine: then it tells none)."""
    told: list[str] = []

    async def tells() -> bool:
        told[:] = [(await client.get("/ready")).json().get("business_date")]
        return told[0] is not None
    await eventually(tells, timeout=30)
    return told[0]


async def test_an_advance_names_the_services_that_have_not_applied_the_new_date(settings: Settings) -> None:
    """Only identity and cards run: the bank and notifications have no consumer in their clock
    groups, so the advance does not wait for them; it names them, and cards has the new date."""
    operator = auth(settings, "operator")
    async with running_service(create_identity, identity_settings(settings)) as identity, \
            running_service(create_cards, settings) as cards:
        sent = time.perf_counter()
        moved = await identity.post("/v1/clock/advance", json={"start": "2026-03-02", "days": 2}, headers=operator)
        took = time.perf_counter() - sent
        assert moved.status_code == 200, moved.text
        assert (moved.json()["applied_everywhere"], moved.json()["services_behind"]) == (
            False, ["bank", "notifications"])
        assert took < identity_settings(settings).identity_clock_followers_wait_seconds  # not waited for
        assert (await cards.get("/ready")).json()["business_date"] == "2026-03-04"
        assert (await identity.get("/ready")).json()["business_date"] == "2026-03-04"
