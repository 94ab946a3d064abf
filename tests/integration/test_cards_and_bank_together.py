"""The cards and bank services (and identity) running together over the real Kafka broker
and MongoDB-wire server: no test plays another service by publishing its events. What one
service's API does must show in the other's answers, after the events have crossed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.bank.app import create as create_bank
from services.cards.app import create as create_cards
from services.identity.app import create as create_identity
from shared.settings import Settings
from tests.helpers import auth, eventually, running_service

from .bank_support import BankClient, bank_events, named
from .cards_support import (
    business_date,
    events_of,
    id_number,
    identity_settings,
    names,
    open_account_and_login,
    register_person,
    wait_known_to_cards,
)

pytestmark = pytest.mark.infra
PIN, NEW_PIN = "246810", "135790"
NAME, MOBILE = "Wang Fang", "13800138000"
PHARMACY = "M-PH-0001"
REPORTS = 200
"""Loss reports, each followed at once by a purchase (``medcard bench``'s loss row makes 1,000)."""
IN_FLIGHT = 10


@dataclass
class Ecosystem:
    settings: Settings
    identity: httpx.AsyncClient
    cards: httpx.AsyncClient
    bank: BankClient

    def as_(self, role: str, **claims: str) -> dict[str, str]:
        return auth(self.settings, role, **claims)  # type: ignore[arg-type]

    async def advance_clock(self, body: dict[str, object], to: str) -> None:
        """Advance the business date through identity; wait until cards and the bank follow it."""
        moved = await self.identity.post("/v1/clock/advance", json=body, headers=self.as_("operator"))
        assert moved.status_code == 200, moved.text

        async def followed() -> bool:
            return (await business_date(self.settings, "cards") == to
                    and await business_date(self.settings, "bank") == to)
        await eventually(followed, timeout=30)

    async def card(self, number: str) -> dict[str, Any]:
        """A card as the cards service shows it to agency staff."""
        resp = await self.cards.get(f"/v1/cards/{number}", headers=self.as_("clerk"))
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    async def wait_card_state(self, number: str, state: str) -> None:
        async def reached() -> bool:
            return (await self.card(number))["state"] == state
        await eventually(reached, timeout=30)

    async def replacement(self, receipt: str) -> dict[str, Any]:
        resp = await self.cards.get(f"/v1/replacements/{receipt}", headers=self.as_("clerk"))
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    async def wait_replacement_status(self, receipt: str, status: str) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        async def reached() -> bool:
            seen.update(await self.replacement(receipt))
            return seen["status"] == status
        await eventually(reached, timeout=30)
        return seen

    async def stamp(self, receipt: str) -> dict[str, Any]:
        """A teller stamps the receipt at the bank, once the bank has learnt of it from cards
        (until then the bank answers 404 and changes nothing)."""
        answers: list[httpx.Response] = []

        async def stamped() -> bool:
            answers[:] = [await self.bank.http.post("/v1/stamps", headers=self.as_("teller"), json={
                "receipt_number": receipt, "branch": "BOC Savings Office, Xidan", "seal": "BOC-XD-0420"})]
            assert answers[0].status_code in (201, 404), answers[0].text
            return answers[0].status_code == 201
        await eventually(stamped, timeout=30)
        return dict(answers[0].json())


@asynccontextmanager
async def ecosystem(settings: Settings) -> AsyncIterator[Ecosystem]:
    async with running_service(create_identity, identity_settings(settings)) as identity, \
            running_service(create_cards, settings) as cards, running_service(create_bank, settings) as bank:
        eco = Ecosystem(settings, identity, cards, BankClient(bank, settings))
        await eco.advance_clock({"start": "2026-01-23", "days": 3}, "2026-01-26")  # a Monday
        await eco.bank.merchant(PHARMACY)
        yield eco


async def insured_with_money(eco: Ecosystem, serial: int, amount_fen: int) -> tuple[str, str, str]:
    """A registered person whose unit paid January, with an active card and ``amount_fen``
    credited at the January month end. Returns (person_id, ID number, card number)."""
    clerk = eco.as_("clerk")
    number = id_number(serial)
    person_id = await register_person(eco.identity, clerk, name=NAME, number=number, mobile=MOBILE)
    unit_id = (await eco.identity.get(f"/v1/persons/{person_id}", headers=clerk)).json()["unit_id"]
    paid = await eco.identity.post("/v1/contributions", headers=clerk, json={
        "unit_id": unit_id, "month": "2026-01", "items": [{"person_id": person_id, "amount_fen": amount_fen}]})
    assert paid.status_code == 201, paid.text

    # The agency issues the card; the bank opens the account and sets the password,
    # which activates the card at the cards service.
    await wait_known_to_cards(eco.cards, clerk, person_id)
    issued = await eco.cards.post("/v1/cards", json={"person_id": person_id}, headers=clerk)
    assert issued.status_code == 201, issued.text
    card = str(issued.json()["card_number"])
    await eco.bank.wait_account(person_id, lambda a: a["current_card"] == card and bool(a["pending_contributions"]))
    await eco.bank.set_pin(card, PIN, number)
    await eco.wait_card_state(card, "active")

    # The January month end credits the personal account share.
    await eco.advance_clock({"to": "2026-02-02"}, "2026-02-02")
    await eco.bank.wait_account(person_id, lambda a: a["balance_fen"] == amount_fen)
    return person_id, number, card


@dataclass
class Insured:
    serial: int
    number: str
    person_id: str = ""
    card: str = ""
    login: dict[str, str] | None = None
    """The holder's auth header, for those who report the loss online."""


async def limited(items: list[Insured], step: Callable[[Insured], Awaitable[None]]) -> None:
    """``step`` for every item, ``IN_FLIGHT`` at a time."""
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def one(item: Insured) -> None:
        async with slots:
            await step(item)
    await asyncio.gather(*(one(i) for i in items))


async def many_insured_with_money(eco: Ecosystem, count: int, amount_fen: int) -> list[Insured]:
    """``count`` people of one unit, each with an active card credited ``amount_fen`` at the
    January month end; every other one has an online account and is logged in."""
    clerk = eco.as_("clerk")
    unit = await eco.identity.post("/v1/units", json={"name": "Hongxing Machinery"}, headers=clerk)
    assert unit.status_code == 201, unit.text
    people = [Insured(i, id_number(300 + i)) for i in range(count)]

    async def enrol(p: Insured) -> None:
        registered = await eco.identity.post("/v1/persons", headers=clerk, json={
            "name": NAME, "id_number": p.number, "mobile": MOBILE, "household_number": f"1101050{p.serial:05d}",
            "unit_id": unit.json()["unit_id"]})
        assert registered.status_code == 201, registered.text
        p.person_id = registered.json()["person_id"]
        if p.serial % 2:
            p.login = await open_account_and_login(eco.identity, eco.settings, p.person_id, p.number,
                                                   f"holder{p.serial:04d}", name=NAME)
        await wait_known_to_cards(eco.cards, clerk, p.person_id)
        issued = await eco.cards.post("/v1/cards", json={"person_id": p.person_id}, headers=clerk)
        assert issued.status_code == 201, issued.text
        p.card = issued.json()["card_number"]

        async def pin_set() -> bool:  # the bank knows the card once CardIssued has crossed
            r = await eco.bank.http.put(f"/v1/cards/{p.card}/password", headers=eco.as_("teller"),
                                    json={"pin": PIN, "id_number": p.number})
            assert r.status_code in (200, 404), r.text
            return r.status_code == 200
        await eventually(pin_set, timeout=60)

    await limited(people, enrol)
    paid = await eco.identity.post("/v1/contributions", headers=clerk, json={
        "unit_id": unit.json()["unit_id"], "month": "2026-01",
        "items": [{"person_id": p.person_id, "amount_fen": amount_fen} for p in people]})
    assert paid.status_code == 201, paid.text

    async def recorded(p: Insured) -> None:  # before the month end: a later one would wait for the next
        await eco.bank.wait_account(p.person_id, lambda a: bool(a["pending_contributions"]), timeout=60)
    await limited(people, recorded)
    await eco.advance_clock({"to": "2026-02-02"}, "2026-02-02")

    async def credited() -> bool:
        totals = await eco.bank.http.get("/v1/ledger/totals", headers=eco.as_("operator"))
        return bool(totals.json()["balance_fen"] == count * amount_fen)
    await eventually(credited, timeout=60)
    return people


async def test_no_purchase_is_approved_on_a_card_once_its_loss_report_answered_blocked(settings: Settings) -> None:
    """Each report, online or at the bank counter, is followed at once by a purchase on the card
    (a thief who knows the PIN): after a "blocked" answer, none is ever approved. A report the
    bank had not confirmed in time says so ("pending"); its repeat tells the block once it is."""
    fast = settings.model_copy(update={"argon2_memory_kib": 256, "argon2_time_cost": 1,
                                       "rate_limit_per_client": "100000/minute"})  # one client opens 100 accounts
    async with ecosystem(fast) as eco:
        people = await many_insured_with_money(eco, REPORTS, 10_000)
        answers: dict[str, tuple[int, dict[str, Any], str]] = {}

        async def lose_then_buy(p: Insured) -> None:
            if p.login is not None:
                lost = await eco.cards.post("/v1/loss-reports/online", headers=p.login,
                                            json={"name": NAME, "id_number": p.number, "mobile": MOBILE})
            else:
                lost = await eco.cards.post("/v1/loss-reports/bank", headers=eco.as_("teller"), json={
                    "card_number": p.card, "id_number": p.number, "letter_reference": f"HX-2026-{p.serial:04d}"})
            thief = await eco.bank.swipe(p.card, PIN, PHARMACY, 100)
            answers[p.card] = (lost.status_code, lost.json(), thief["response_code"])

        started = time.perf_counter()
        await limited(people, lose_then_buy)
        took = time.perf_counter() - started

        assert {status for status, _, _ in answers.values()} == {201}
        assert all(a["card_state"] == "lost" and a["block"] == ("confirmed" if a["blocked"] else "pending")
                   for _, a, _ in answers.values())
        after_blocked = [code for _, a, code in answers.values() if a["blocked"]]
        pending = [p for p in people if not answers[p.card][1]["blocked"]]
        print(f"{REPORTS} reports in {took:.1f} s: {len(after_blocked)} blocked, {len(pending)} pending; "
              f"purchases after a pending answer: {sorted(answers[p.card][2] for p in pending)}")
        assert after_blocked and set(after_blocked) == {"41"}, after_blocked  # never "00"

        # The same report again (same voucher) tells the block as it now stands: confirmed.
        for p in [*pending, people[0], people[1]]:
            again = await eco.cards.post("/v1/loss-reports/bank", headers=eco.as_("teller"), json={
                "card_number": p.card, "id_number": p.number, "letter_reference": "HX-2026-9999"})
            assert again.status_code == 200, again.text
            assert again.json()["voucher"] == answers[p.card][1]["voucher"]
            assert (again.json()["blocked"], again.json()["block"]) == (True, "confirmed"), again.json()


@pytest.mark.parametrize("channel", ["online", "bank"])
async def test_a_card_reported_lost_at_cards_is_refused_at_the_bank_pos_with_a_fraud_alert(
    settings: Settings, channel: str,
) -> None:
    async with ecosystem(settings) as eco:
        person_id, number, card = await insured_with_money(eco, 51, 10_000)
        assert (await eco.bank.swipe(card, PIN, PHARMACY, 1_500))["response_code"] == "00"

        # The holder reports the loss online, or a teller at the counter on the letter of proof.
        if channel == "online":
            me = await open_account_and_login(eco.identity, settings, person_id, number, "wangfang51", name=NAME)
            lost = await eco.cards.post("/v1/loss-reports/online", headers=me,
                                        json={"name": NAME, "id_number": number, "mobile": MOBILE})
        else:
            lost = await eco.cards.post("/v1/loss-reports/bank", headers=eco.as_("teller"), json={
                "card_number": card, "id_number": number, "letter_reference": "HX-2026-0051"})
        assert lost.status_code == 201, lost.text
        assert lost.json()["channel"] == channel

        # The bank applies the cards service's CardLost: the card stops at the POS.
        account = await eco.bank.wait_account(person_id, lambda a: a["cards"][0]["state"] == "lost")
        assert account["cards"][0]["blocked_at"] is not None
        refused = await eco.bank.swipe(card, PIN, PHARMACY, 1_000)
        assert (refused["approved"], refused["response_code"]) == (False, "41")
        assert (await eco.bank.wait_account(person_id))["balance_fen"] == 8_500

        # The attempt is a fraud signal on the bank's topic, naming the refused authorisation.
        events = await bank_events(settings, lambda es: bool(named(es, "FraudAlertRaised")))
    [alert] = named(events, "FraudAlertRaised")
    assert (alert.data.person_id, alert.data.card_number) == (person_id, card)  # type: ignore[attr-defined]
    assert alert.data.authorisation_id == refused["authorisation_id"]  # type: ignore[attr-defined]
    assert [e.data.reason_code for e in named(events, "PurchaseDeclined")] == ["41"]  # type: ignore[attr-defined]


async def test_a_receipt_stamped_at_the_bank_starts_production_and_the_card_is_ready_15_working_days_later(
    settings: Settings,
) -> None:
    async with ecosystem(settings) as eco:
        person_id, number, card = await insured_with_money(eco, 52, 3_000)

        # The holder brings the broken card to the agency: the clerk gives a receipt.
        applied = await eco.cards.post("/v1/replacements", headers=eco.as_("clerk"),
                                       json={"card_number": card, "id_number": number, "broken_card": True})
        assert applied.status_code == 201, applied.text
        receipt = applied.json()["receipt_number"]

        # The bank stamps it through its own API; the card was not reported lost, so the stamp reports it.
        stamp = await eco.stamp(receipt)
        assert (stamp["card_number"], stamp["business_date"], stamp["loss_reported"]) == (card, "2026-02-02", True)
        assert (await eco.bank.swipe(card, PIN, PHARMACY, 100))["response_code"] == "41"

        # The cards service learns of the stamp from Kafka: production starts, 15 working days.
        started = await eco.wait_replacement_status(receipt, "in_production")
        assert started["state"] == "lost"  # the card, in the shared vocabulary
        assert (started["stamped_on"], started["ready_on"]) == ("2026-02-02", "2026-02-23")
        assert (await eco.card(card))["loss"]["channel"] == "bank"
        await eco.advance_clock({"to": "2026-02-20"}, "2026-02-20")
        assert (await eco.replacement(receipt))["status"] == "in_production"
        await eco.advance_clock({"to": "2026-02-23"}, "2026-02-23")
        await eco.wait_replacement_status(receipt, "ready")

        events = await events_of(settings, "cards", person_id, 6)
    assert names(events) == ["CardIssued", "CardActivated", "ReplacementRequested", "CardLost",
                             "ReplacementProductionStarted", "ReplacementReady"]


async def test_a_collected_replacement_takes_the_account_and_balance_and_the_old_card_is_refused(
    settings: Settings,
) -> None:
    async with ecosystem(settings) as eco:
        clerk = eco.as_("clerk")
        person_id, number, old = await insured_with_money(eco, 53, 7_000)
        assert (await eco.bank.swipe(old, PIN, PHARMACY, 2_000))["response_code"] == "00"

        # Lost online, replaced at the agency, stamped at the bank, ready 15 working days later.
        me = await open_account_and_login(eco.identity, settings, person_id, number, "wangfang53", name=NAME)
        lost = await eco.cards.post("/v1/loss-reports/online", headers=me,
                                    json={"name": NAME, "id_number": number, "mobile": MOBILE})
        assert lost.status_code == 201, lost.text
        applied = await eco.cards.post("/v1/replacements", headers=clerk,
                                       json={"card_number": old, "id_number": number})
        assert applied.status_code == 201, applied.text
        receipt = applied.json()["receipt_number"]
        assert (await eco.stamp(receipt))["loss_reported"] is False
        await eco.wait_replacement_status(receipt, "in_production")
        await eco.advance_clock({"to": "2026-02-23"}, "2026-02-23")
        await eco.wait_replacement_status(receipt, "ready")

        # The card management centre hands out the new card.
        collected = await eco.cards.post(f"/v1/replacements/{receipt}/collect", headers=clerk,
                                         json={"id_number": number})
        assert collected.status_code == 201, collected.text
        new = collected.json()["card_number"]

        # At the bank, the account and its balance follow the new card; the old one is refused.
        account = await eco.bank.wait_account(person_id, lambda a: a["current_card"] == new)
        assert account["balance_fen"] == 5_000
        # Issue 17: the bank kept the replaced card "lost" while cards said "cancelled"; now both
        # say cancelled, and the new card awaits its password everywhere.
        assert {c["card_number"]: c["state"] for c in account["cards"]} == {old: "cancelled",
                                                                             new: "pending_activation"}
        assert (await eco.card(old))["state"] == "cancelled"
        assert (await eco.card(new))["state"] == "pending_activation"
        assert (await eco.bank.swipe(old, PIN, PHARMACY, 100))["response_code"] == "41"
        assert (await eco.bank.swipe(new, PIN, PHARMACY, 100))["response_code"] == "62"  # no password yet

        # The new password set at the bank activates the new card at cards; it buys.
        await eco.bank.set_pin(new, NEW_PIN, number)
        await eco.wait_card_state(new, "active")
        bought = await eco.bank.swipe(new, NEW_PIN, PHARMACY, 5_000)
        assert (bought["response_code"], bought["balance_after_fen"]) == ("00", 0)
        events = await bank_events(settings, lambda es: bool(named(es, "AccountMovedToCard")))
    [moved] = named(events, "AccountMovedToCard")
    data: Any = moved.data
    assert (data.old_card_number, data.new_card_number, data.balance_fen) == (old, new, 5_000)
