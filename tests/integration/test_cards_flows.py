"""The cards service through its HTTP API, with the identity service beside it, against the
real Kafka broker and MongoDB-wire server. The tests play the bank by publishing its events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime

import httpx
import pytest

from services.cards.app import create as create_cards
from services.identity.app import create as create_identity
from shared.events import BankStamped, CardPasswordSet
from shared.ids import luhn_valid
from shared.settings import Settings
from tests.helpers import auth, eventually, running_service

from .cards_support import (
    cards_business_date,
    cards_doc,
    events_of,
    id_number,
    identity_settings,
    names,
    open_account_and_login,
    publish_as_bank,
    register_person,
    wait_known_to_cards,
)

pytestmark = pytest.mark.infra
NAME, MOBILE = "Wang Fang", "13800138000"


@asynccontextmanager
async def both_services(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with running_service(create_identity, identity_settings(settings)) as identity, \
            running_service(create_cards, settings) as cards:
        yield identity, cards


async def active_card(settings: Settings, cards: httpx.AsyncClient, clerk: dict[str, str], person_id: str) -> str:
    """Issue a card and have the bank set its password, which activates it."""
    await wait_known_to_cards(cards, clerk, person_id)
    issued = await cards.post("/v1/cards", json={"person_id": person_id}, headers=clerk)
    assert issued.status_code == 201, issued.text
    assert issued.json()["state"] == "pending_activation"
    number = str(issued.json()["card_number"])
    assert luhn_valid(number) and len(number) == 19
    await publish_as_bank(settings, CardPasswordSet(person_id=person_id, card_number=number, channel="counter"),
                          person_id=person_id, sequence=1)
    await eventually(lambda: card_state_is(cards, clerk, number, "active"))
    return number


async def card_state_is(cards: httpx.AsyncClient, headers: dict[str, str], number: str, state: str) -> bool:
    return bool((await cards.get(f"/v1/cards/{number}", headers=headers)).json()["state"] == state)


async def test_a_cardholder_reports_the_card_lost_online_and_keeps_one_voucher(settings: Settings) -> None:
    clerk, teller = auth(settings, "clerk"), auth(settings, "teller")
    async with both_services(settings) as (identity, cards):
        # Register at the agency, open an online account, log in; the card is issued and activated.
        number = id_number(11)
        person_id = await register_person(identity, clerk, number=number)
        me = await open_account_and_login(identity, settings, person_id, number, "wangfang11")
        card = await active_card(settings, cards, clerk, person_id)

        # Report loss: name, ID number and mobile; the card is blocked at once.
        details = {"name": NAME, "id_number": number, "mobile": MOBILE}
        first = await cards.post("/v1/loss-reports/online", json=details, headers=me)
        assert first.status_code == 201, first.text
        voucher = first.json()["voucher"]
        assert first.json()["channel"] == "online" and first.json()["card_state"] == "lost"
        assert await card_state_is(cards, me, card, "lost")

        # Reporting again, online or at the bank, answers the same voucher.
        again = await cards.post("/v1/loss-reports/online", json=details, headers=me)
        assert (again.status_code, again.json()["voucher"]) == (200, voucher)
        at_bank = await cards.post("/v1/loss-reports/bank", headers=teller, json={
            "card_number": card, "id_number": number, "letter_reference": "HX-1"})
        assert (at_bank.status_code, at_bank.json()["voucher"]) == (200, voucher)

        # Anyone may query the report with the voucher and the matching ID number.
        query = await cards.post("/v1/loss-reports/query", json={"voucher": voucher, "id_number": number})
        assert query.status_code == 200
        assert query.json()["card_number_masked"] == card[:4] + "*" * 11 + card[-4:]
        other = await cards.post("/v1/loss-reports/query", json={"voucher": voucher, "id_number": id_number(12)})
        assert other.status_code == 404

        # On Kafka, in order for this person: issued, activated, lost once.
        events = await events_of(settings, "cards", person_id, 3)
        assert names(events) == ["CardIssued", "CardActivated", "CardLost"]
        assert [e.sequence for e in events] == [1, 2, 3]
        assert (events[2].data.voucher, events[2].data.channel) == (voucher, "online")  # type: ignore[attr-defined]
        assert all(e.subject == card for e in events)
        assert (await cards_doc(settings, person_id))["version"] == 3


async def test_a_bank_teller_reports_a_loss_on_the_letter_of_proof(settings: Settings) -> None:
    clerk, teller = auth(settings, "clerk"), auth(settings, "teller")
    async with both_services(settings) as (identity, cards):
        number = id_number(21)
        person_id = await register_person(identity, clerk, number=number)
        card = await active_card(settings, cards, clerk, person_id)
        report = {"card_number": card, "id_number": number, "letter_reference": "HX-2026-0031"}

        wrong_id = await cards.post("/v1/loss-reports/bank", headers=teller, json={**report, "id_number": id_number(22)})
        # Issue 17: someone else's (well-formed) ID card is a 403, as at the bank's counter (it was a 422).
        assert wrong_id.status_code == 403 and wrong_id.json()["detail"] == "the details given do not match the cardholder"
        blank_letter = await cards.post("/v1/loss-reports/bank", headers=teller, json={**report, "letter_reference": "   "})
        assert blank_letter.status_code == 422 and "body.letter_reference: Value error, must not be blank" in (
            blank_letter.json()["detail"])  # issue 17: a blank letter of proof was accepted
        assert await card_state_is(cards, clerk, card, "active")

        first = await cards.post("/v1/loss-reports/bank", headers=teller, json=report)
        assert first.status_code == 201, first.text
        assert (first.json()["channel"], first.json()["letter_reference"]) == ("bank", "HX-2026-0031")
        assert await card_state_is(cards, clerk, card, "lost")
        again = await cards.post("/v1/loss-reports/bank", headers=teller, json=report)
        assert (again.status_code, again.json()["voucher"]) == (200, first.json()["voucher"])
        query = await cards.post("/v1/loss-reports/query", json={"voucher": first.json()["voucher"],
                                                                  "id_number": number})
        assert query.status_code == 200 and query.json()["channel"] == "bank"

        events = await events_of(settings, "cards", person_id, 3)
        assert names(events) == ["CardIssued", "CardActivated", "CardLost"]
        assert [e.sequence for e in events] == [1, 2, 3]
        lost = events[2].data
        assert (lost.channel, lost.letter_reference) == ("bank", "HX-2026-0031")  # type: ignore[attr-defined]
        assert (await cards_doc(settings, person_id))["version"] == 3


async def advance_clock(identity: httpx.AsyncClient, settings: Settings, body: dict[str, object], to: str) -> None:
    """Advance the business date through identity and wait until cards has applied it."""
    moved = await identity.post("/v1/clock/advance", json=body, headers=auth(settings, "operator"))
    assert moved.status_code == 200, moved.text

    async def applied() -> bool:
        return await cards_business_date(settings) == to
    await eventually(applied, timeout=30)


async def test_a_lost_card_is_replaced_from_application_to_the_new_card_in_hand(settings: Settings) -> None:
    clerk = auth(settings, "clerk")
    async with both_services(settings) as (identity, cards):
        await advance_clock(identity, settings, {"start": "2026-01-02", "days": 3}, "2026-01-05")  # a Monday
        number = id_number(31)
        person_id = await register_person(identity, clerk, number=number)
        me = await open_account_and_login(identity, settings, person_id, number, "wangfang31")
        card = await active_card(settings, cards, clerk, person_id)
        lost = await cards.post("/v1/loss-reports/online", json={"name": NAME, "id_number": number, "mobile": MOBILE},
                                headers=me)
        assert lost.status_code == 201 and lost.json()["business_date"] == "2026-01-05"

        # The clerk takes the application and gives a receipt.
        applied = await cards.post("/v1/replacements", json={"card_number": card, "id_number": number}, headers=clerk)
        assert applied.status_code == 201, applied.text
        receipt = applied.json()["receipt_number"]
        assert (applied.json()["state"], applied.json()["status"]) == ("lost", "requested")
        assert applied.json()["documents"] == ["resident ID card", "household registration book"]
        early = await cards.post(f"/v1/replacements/{receipt}/collect", json={"id_number": number}, headers=clerk)
        assert early.status_code == 409 and "not ready" in early.json()["detail"]
        assert (await cards_doc(settings, person_id))["version"] == 4

        # The bank stamps the receipt; the card is ready 15 working days later.
        stamp = BankStamped(person_id=person_id, card_number=card, receipt_number=receipt, branch="Xicheng savings",
                            seal="BOC-XC-01", processed_at=datetime.now(UTC), business_date=date(2026, 1, 5),
                            loss_reported=False)
        await publish_as_bank(settings, stamp, person_id=person_id, sequence=2)

        async def replacement() -> dict[str, object]:
            resp = await cards.get(f"/v1/replacements/{receipt}", headers=me)
            assert resp.status_code == 200, resp.text
            return dict(resp.json())

        async def in_state(status: str) -> bool:
            return (await replacement())["status"] == status
        await eventually(lambda: in_state("in_production"))
        assert (await replacement())["ready_on"] == "2026-01-26"

        await advance_clock(identity, settings, {"to": "2026-01-23"}, "2026-01-23")
        assert await in_state("in_production")
        await advance_clock(identity, settings, {"to": "2026-01-26"}, "2026-01-26")
        await eventually(lambda: in_state("ready"))

        # The card management centre hands out the new card on the receipt and the ID card.
        wrong = await cards.post(f"/v1/replacements/{receipt}/collect", json={"id_number": id_number(32)},
                                 headers=clerk)
        assert wrong.status_code == 403
        collected = await cards.post(f"/v1/replacements/{receipt}/collect", json={"id_number": number}, headers=clerk)
        assert collected.status_code == 201, collected.text
        new = collected.json()
        assert (new["state"], new["replaces"], new["issued_on"]) == ("pending_activation", card, "2026-01-26")
        old = (await cards.get(f"/v1/cards/{card}", headers=me)).json()
        assert (old["state"], old["replaced_by"]) == ("cancelled", new["card_number"])
        assert (await replacement())["status"] == "collected"
        # Issue 17: a second collection said "not ready to collect: the card is cancelled".
        twice = await cards.post(f"/v1/replacements/{receipt}/collect", json={"id_number": number}, headers=clerk)
        assert twice.status_code == 409 and twice.json()["detail"] == (
            f"replacement {receipt} was already collected: the new card {new['card_number']} was handed out on "
            "2026-01-26")

        # The new card's password is set at the bank, which activates it.
        await publish_as_bank(settings, CardPasswordSet(person_id=person_id, card_number=new["card_number"],
                                                        channel="counter"), person_id=person_id, sequence=3)
        await eventually(lambda: card_state_is(cards, clerk, new["card_number"], "active"))
        mine = (await cards.get(f"/v1/persons/{person_id}/cards", headers=me)).json()
        assert [c["state"] for c in mine["data"]] == ["cancelled", "active"]

        # Every step is on Kafka, in order, for this cardholder.
        events = await events_of(settings, "cards", person_id, 9)
        assert names(events) == ["CardIssued", "CardActivated", "CardLost", "ReplacementRequested",
                                 "ReplacementProductionStarted", "ReplacementReady", "CardCancelled", "CardIssued",
                                 "CardActivated"]
        assert [e.sequence for e in events] == list(range(1, 10))
        ready = events[5].data
        assert ready.ready_on == date(2026, 1, 26)  # type: ignore[attr-defined]
        assert "card management centre" in ready.pickup_location  # type: ignore[attr-defined]
        assert events[6].data.replaced_by == new["card_number"]  # type: ignore[attr-defined]
        assert events[7].data.replaces == card  # type: ignore[attr-defined]


async def test_tokens_roles_and_refused_commands_change_nothing(settings: Settings) -> None:
    clerk = auth(settings, "clerk")
    async with both_services(settings) as (identity, cards):
        number = id_number(41)
        person_id = await register_person(identity, clerk, number=number)
        other_id = await register_person(identity, clerk, name="Li Lei", number=id_number(42), mobile="13900139000")
        await wait_known_to_cards(cards, clerk, person_id)
        await wait_known_to_cards(cards, clerk, other_id)
        card = (await cards.post("/v1/cards", json={"person_id": person_id}, headers=clerk)).json()["card_number"]
        me = auth(settings, "cardholder", sub=person_id, person_id=person_id)
        someone_else = auth(settings, "cardholder", sub=other_id, person_id=other_id)

        # 401 without a token, 403 with the wrong role or someone else's data; someone else's
        # card is not found (a cardholder cannot tell it from a number nobody has).
        assert (await cards.post("/v1/cards", json={"person_id": person_id})).status_code == 401
        bad_token = {"Authorization": "Bearer not-a-token"}
        assert (await cards.get(f"/v1/cards/{card}", headers=bad_token)).status_code == 401
        assert (await cards.post("/v1/cards", json={"person_id": person_id}, headers=me)).status_code == 403
        teller = auth(settings, "teller")
        assert (await cards.post("/v1/cards", json={"person_id": person_id}, headers=teller)).status_code == 403
        assert (await cards.get(f"/v1/cards/{card}", headers=someone_else)).status_code == 404
        assert (await cards.get(f"/v1/persons/{person_id}/cards", headers=someone_else)).status_code == 403
        details = {"name": NAME, "id_number": number, "mobile": MOBILE}
        assert (await cards.post("/v1/loss-reports/online", json=details, headers=clerk)).status_code == 403
        bank_report = {"card_number": card, "id_number": number, "letter_reference": "HX-9"}
        assert (await cards.post("/v1/loss-reports/bank", json=bank_report, headers=me)).status_code == 403

        # Refused commands: precise 4xx, nothing written, nothing published.
        wrong_mobile = await cards.post("/v1/loss-reports/online", json={**details, "mobile": "13900139000"},
                                        headers=me)
        assert wrong_mobile.status_code == 403 and "do not match" in wrong_mobile.json()["detail"]
        bad_id = await cards.post("/v1/loss-reports/online", json={**details, "id_number": number[:-1]}, headers=me)
        assert bad_id.status_code == 422 and "18 characters" in bad_id.json()["detail"]
        second = await cards.post("/v1/cards", json={"person_id": person_id}, headers=clerk)
        assert second.status_code == 409 and "at most one active card" in second.json()["detail"]
        not_lost = await cards.post("/v1/replacements", json={"card_number": card, "id_number": number},
                                    headers=clerk)
        assert not_lost.status_code == 409 and "pending_activation" in not_lost.json()["detail"]
        unknown = await cards.post("/v1/cards", json={"person_id": "P-nobody"}, headers=clerk)
        assert unknown.status_code == 404
        assert await card_state_is(cards, me, card, "pending_activation")
        doc = await cards_doc(settings, person_id)
        assert doc["version"] == 1 and len(doc["cards"]) == 1
        events = await events_of(settings, "cards", person_id, 1)
        assert names(events) == ["CardIssued"]
