"""The bank at the POS, against the real Kafka broker and MongoDB-wire server: merchants,
loss reports, replacement, concurrent purchases and the card password."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import pytest

from services.bank.app import create
from shared.events import CardLost
from shared.ids import make_id_number
from shared.settings import Settings
from tests.helpers import eventually, running_service
from tests.integration.bank_support import BankClient, EventSource, bank_events, credited_account, named

pytestmark = pytest.mark.infra
PIN = "246810"


async def test_a_card_buys_at_a_designated_pharmacy_only_and_never_cash(settings: Settings) -> None:
    async with EventSource(settings) as src, running_service(create, settings) as http:
        bank = BankClient(http, settings)
        await bank.merchant("M-PH")
        await bank.merchant("M-SH", kind="shop", designated=False)
        person_id, card = await credited_account(src, bank, 10_000)

        assert (await bank.swipe(card, PIN, "M-PH", 3_550))["response_code"] == "00"
        assert (await bank.swipe(card, PIN, "M-SH", 100))["response_code"] == "58"
        assert (await bank.swipe(card, PIN, "M-PH", 100, kind="cash_withdrawal"))["response_code"] == "57"
        assert (await bank.swipe(card, PIN, "M-PH", 100, kind="transfer"))["response_code"] == "57"
        assert (await bank.swipe(card, PIN, "M-UNKNOWN", 100))["response_code"] == "03"
        assert (await bank.swipe(card, PIN, "M-PH", 6_451))["response_code"] == "51"
        assert (await bank.swipe("6216619999999999999", PIN, "M-PH", 100))["response_code"] == "14"
        # A terminal speaks only for its own merchant; a malformed request is not a POS answer.
        body = {"transaction_id": "T-1", "card_number": card, "pin": PIN, "merchant_id": "M-PH", "amount_fen": 100}
        assert (await http.post("/v1/pos/authorisations", json=body,
                                headers=bank.as_("merchant", sub="M-SH"))).status_code == 403
        assert (await http.post("/v1/pos/authorisations", json={**body, "pin": "12ab56"},
                                headers=bank.as_("merchant", sub="M-PH"))).status_code == 422
        assert (await http.post("/v1/pos/authorisations", json=body)).status_code == 401

        assert (await bank.wait_account(person_id))["balance_fen"] == 6_450
        events = await bank_events(settings, lambda es: len(named(es, "PurchaseDeclined")) >= 5)
    codes = sorted(e.data.reason_code for e in named(events, "PurchaseDeclined"))  # type: ignore[attr-defined]
    assert codes == ["03", "51", "57", "57", "58"]
    [authorised] = named(events, "PurchaseAuthorised")
    assert authorised.data.balance_after_fen == 6_450  # type: ignore[attr-defined]


async def test_a_card_whose_loss_event_arrives_is_refused_with_41_and_a_fraud_alert(settings: Settings) -> None:
    async with EventSource(settings) as src, running_service(create, settings) as http:
        bank = BankClient(http, settings)
        await bank.merchant("M-PH")
        person_id, card = await credited_account(src, bank, 5_000)
        assert (await bank.swipe(card, PIN, "M-PH", 1_000))["approved"] is True

        await src.publish(CardLost(person_id=person_id, card_number=card, channel="online", voucher="V1",
                                   business_date=date(2026, 2, 3), letter_reference=None), person_id)
        blocked = await bank.wait_account(person_id, lambda a: a["cards"][0]["state"] == "lost")
        assert blocked["cards"][0]["blocked_at"] is not None
        answer = await bank.swipe(card, PIN, "M-PH", 1_000)
        assert (answer["approved"], answer["response_code"]) == (False, "41")
        assert (await bank.wait_account(person_id))["balance_fen"] == 4_000
        events = await bank_events(settings, lambda es: bool(named(es, "FraudAlertRaised")))
    [alert] = named(events, "FraudAlertRaised")
    assert alert.data.person_id == person_id and alert.data.card_number == card  # type: ignore[attr-defined]
    assert alert.data.authorisation_id == answer["authorisation_id"]  # type: ignore[attr-defined]


async def test_a_replacement_carries_the_balance_over_and_the_old_card_is_refused(settings: Settings) -> None:
    async with EventSource(settings) as src, running_service(create, settings) as http:
        bank = BankClient(http, settings)
        await bank.merchant("M-PH")
        person_id, old = await credited_account(src, bank, 7_000)

        new = await src.card(person_id, replaces=old)
        account = await bank.wait_account(person_id, lambda a: a["current_card"] == new)
        assert account["balance_fen"] == 7_000
        assert {c["card_number"]: c["state"] for c in account["cards"]} == {old: "cancelled",
                                                                             new: "pending_activation"}
        assert (await bank.swipe(old, PIN, "M-PH", 100))["response_code"] == "43"
        assert (await bank.swipe(new, PIN, "M-PH", 100))["response_code"] == "62"  # its password is not set yet
        await bank.set_pin(new, "135790", src.id_numbers[person_id])
        assert (await bank.swipe(new, "135790", "M-PH", 7_000))["response_code"] == "00"
        events = await bank_events(settings, lambda es: bool(named(es, "AccountMovedToCard")))
    [moved] = named(events, "AccountMovedToCard")
    assert (moved.data.old_card_number, moved.data.new_card_number, moved.data.balance_fen) == (  # type: ignore[attr-defined]
        old, new, 7_000)


async def test_twenty_concurrent_purchases_on_one_card_never_overdraw_it(settings: Settings) -> None:
    async with EventSource(settings) as src, running_service(create, settings) as http:
        bank = BankClient(http, settings)
        await bank.merchant("M-PH")
        person_id, card = await credited_account(src, bank, 10_000)

        answers = await asyncio.gather(*(bank.swipe(card, PIN, "M-PH", 5_001 + i) for i in range(20)))
        approved = [a for a in answers if a["approved"]]
        assert len(approved) == 1
        assert sorted({a["response_code"] for a in answers}) == ["00", "51"]
        account = await bank.wait_account(person_id)
        assert account["balance_fen"] == approved[0]["balance_after_fen"] >= 0
        totals = (await http.get("/v1/ledger/totals", headers=bank.as_("operator"))).json()
    assert totals["balance_fen"] == totals["credits_fen"] - totals["debits_fen"] == account["balance_fen"]


async def test_the_password_is_set_changed_locked_after_wrong_tries_and_reset_by_a_teller(
    settings: Settings,
) -> None:
    async with EventSource(settings) as src, running_service(create, settings) as http:
        bank = BankClient(http, settings)
        await bank.merchant("M-PH")
        person_id, id_number = await src.person()
        card = await src.card(person_id)
        await bank.wait_account(person_id)
        holder = bank.as_("cardholder", person_id=person_id)
        password = f"/v1/cards/{card}/password"

        assert (await bank.swipe(card, PIN, "M-PH", 100))["response_code"] == "62"
        r = await http.put(password, json={"pin": PIN}, headers=holder)
        assert r.status_code == 200 and r.json() == {"card_number": card, "password_set": True, "locked": False}
        assert (await http.put(password, json={"pin": "111111"}, headers=holder)).status_code == 409
        # Another cardholder is told what an unknown card number gets.
        assert (await http.put(password, json={"pin": PIN}, headers=bank.as_("cardholder", person_id="P-other"))
                ).status_code == 404
        assert (await http.post(f"{password}/change", json={"old_pin": "000000", "new_pin": "135790"},
                                headers=holder)).status_code == 403
        r = await http.post(f"{password}/change", headers=holder,
                            json={"old_pin": PIN, "new_pin": "135790", "channel": "phone"})
        assert r.status_code == 200, r.text

        codes = [(await bank.swipe(card, PIN, "M-PH", 100))["response_code"] for _ in range(3)]
        assert codes == ["55", "55", "75"]  # settings.pin_max_failures == 3
        assert (await bank.swipe(card, "135790", "M-PH", 100))["response_code"] == "75"
        assert (await http.post(f"{password}/change", json={"old_pin": "135790", "new_pin": "975310"},
                                headers=holder)).status_code == 423

        reset = f"{password}/reset"
        wrong_id = make_id_number("110105", date(1970, 1, 1), 1)  # valid, but someone else's
        assert (await http.post(reset, json={"id_number": id_number, "new_pin": "975310"}, headers=holder)
                ).status_code == 403
        assert (await http.post(reset, json={"id_number": wrong_id, "new_pin": "975310"},
                                headers=bank.as_("teller"))).status_code == 403
        assert (await http.post(reset, json={"id_number": "110105197001010012", "new_pin": "975310"},
                                headers=bank.as_("teller"))).status_code == 422  # fails the check digit
        r = await http.post(reset, json={"id_number": id_number, "new_pin": "975310"}, headers=bank.as_("teller"))
        assert r.json() == {"card_number": card, "password_set": True, "locked": False}
        assert (await bank.swipe(card, "975310", "M-PH", 100))["response_code"] == "51"  # PIN right, no money
        events = await bank_events(settings, lambda es: bool(named(es, "CardPasswordReset")))
    assert [e.name for e in events if e.name.startswith("CardPassword")] == [
        "CardPasswordSet", "CardPasswordChanged", "CardPasswordLocked", "CardPasswordReset"]
    assert named(events, "CardPasswordSet")[0].data.channel == "online"  # type: ignore[attr-defined]
    published = " ".join(e.model_dump_json() for e in events)
    assert all(secret not in published for secret in (PIN, "135790", "975310", id_number))


async def test_a_pos_balance_inquiry_needs_the_password_counts_wrong_ones_and_alerts_on_a_lost_card(
    settings: Settings,
) -> None:
    async with EventSource(settings) as src, running_service(create, settings) as http:
        bank = BankClient(http, settings)
        await bank.merchant("M-PH")
        await bank.merchant("M-SH", kind="shop", designated=False)
        person_id, card = await credited_account(src, bank, 6_000)

        # With the card password, a designated merchant's terminal is told the balance.
        told = await bank.inquire(card, PIN, "M-PH")
        assert (told["approved"], told["response_code"], told["balance_fen"]) == (True, "00", 6_000)
        # Without it, or elsewhere, nothing is told.
        body = {"card_number": card, "pin": PIN, "merchant_id": "M-PH"}
        inquiries = "/v1/pos/balance-inquiries"
        assert (await http.post(inquiries, json={k: v for k, v in body.items() if k != "pin"},
                                headers=bank.as_("merchant", sub="M-PH"))).status_code == 422
        assert (await http.post(inquiries, json=body, headers=bank.as_("merchant", sub="M-SH"))).status_code == 403
        assert (await http.post(inquiries, json=body)).status_code == 401
        assert (await bank.inquire(card, PIN, "M-SH"))["response_code"] == "58"
        assert (await http.get(f"/v1/cards/{card}/balance", headers=bank.as_("merchant", sub="M-PH"))
                ).status_code == 403

        # Wrong passwords count towards the same lock, whether inquiring or buying.
        wrong = await bank.inquire(card, "999999", "M-PH")
        assert (wrong["response_code"], wrong["balance_fen"]) == ("55", None)
        assert (await bank.swipe(card, "999999", "M-PH", 100))["response_code"] == "55"
        assert (await bank.inquire(card, "999999", "M-PH"))["response_code"] == "75"
        assert (await bank.inquire(card, PIN, "M-PH"))["response_code"] == "75"
        assert (await bank.wait_account(person_id))["password_locked"] is True

        # An inquiry on a card reported lost is refused, and the holder is alerted.
        await src.publish(CardLost(person_id=person_id, card_number=card, channel="online", voucher="V2",
                                   business_date=date(2026, 2, 3), letter_reference=None), person_id)
        await bank.wait_account(person_id, lambda a: a["cards"][0]["state"] == "lost")
        thief = await bank.inquire(card, PIN, "M-PH")
        assert (thief["approved"], thief["response_code"], thief["balance_fen"]) == (False, "41", None)
        events = await bank_events(settings, lambda es: bool(named(es, "FraudAlertRaised")))
    [alert] = named(events, "FraudAlertRaised")
    assert alert.data.authorisation_id == thief["authorisation_id"]  # type: ignore[attr-defined]
    assert (alert.data.kind, alert.data.amount_fen) == ("balance_inquiry", 0)  # type: ignore[attr-defined]
    inquired = [e.data for e in named(events, "BalanceInquired")]
    assert [(d.channel, d.balance_fen) for d in inquired] == [("pos", 6_000)]  # type: ignore[attr-defined]
    assert len(named(events, "CardPasswordLocked")) == 1
    assert [e.data.reason_code for e in named(events, "PurchaseDeclined")] == ["55"]  # type: ignore[attr-defined]
    assert PIN not in " ".join(e.model_dump_json() for e in events)


async def test_a_teller_changes_a_password_only_on_the_holders_id_card(settings: Settings) -> None:
    """Issue 17 (document 004: the holder brings the ID card to the savings office): a teller's
    change asked no ID card. And the balance's channel list offered pos, which it refuses."""
    async with EventSource(settings) as src, running_service(create, settings) as http:
        bank = BankClient(http, settings)
        await bank.merchant("M-PH")
        person_id, id_number = await src.person()
        card = await src.card(person_id)
        await bank.wait_account(person_id)
        await bank.set_pin(card, PIN, id_number)
        change = f"/v1/cards/{card}/password/change"
        teller = bank.as_("teller")
        body = {"old_pin": PIN, "new_pin": "135790", "channel": "counter"}

        no_id = await http.post(change, json=body, headers=teller)
        assert no_id.status_code == 422 and "id_number is required" in no_id.json()["detail"], no_id.text
        someone_else = make_id_number("110105", date(1970, 1, 1), 1)
        wrong = await http.post(change, json={**body, "id_number": someone_else}, headers=teller)
        assert wrong.status_code == 403 and "does not match the cardholder" in wrong.json()["detail"]
        malformed = await http.post(change, json={**body, "id_number": "110105197001010012"}, headers=teller)
        assert malformed.status_code == 422 and "check digit" in malformed.json()["detail"]
        assert (await bank.wait_account(person_id))["password_locked"] is False  # nothing counted
        changed = await http.post(change, json={**body, "id_number": id_number}, headers=teller)
        assert changed.status_code == 200, changed.text
        assert (await bank.swipe(card, "135790", "M-PH", 100))["response_code"] == "51"  # PIN right, no money

        # The holder online needs no ID card; the POS channel is not offered for a balance.
        holder = bank.as_("cardholder", person_id=person_id)
        again = await http.post(change, json={"old_pin": "135790", "new_pin": "246810"}, headers=holder)
        assert again.status_code == 200, again.text
        pos = await http.get(f"/v1/cards/{card}/balance", params={"channel": "pos"}, headers=holder)
        assert pos.status_code == 422 and "query.channel" in pos.json()["detail"], pos.text
        events = await bank_events(settings, lambda es: len(named(es, "CardPasswordChanged")) >= 2)
    assert [e.data.channel for e in named(events, "CardPasswordChanged")] == ["counter", "online"]  # type: ignore[attr-defined]


async def test_a_resent_authorisation_is_debited_once_across_replicas_and_a_restart(settings: Settings) -> None:
    """A terminal resends after a timeout: to two bank replicas at once, then to a restarted bank."""
    body = {"transaction_id": "T20260105-000417", "pin": PIN, "merchant_id": "M-PH", "amount_fen": 3_000,
            "kind": "purchase"}
    async with EventSource(settings) as src, running_service(create, settings) as one, \
            running_service(create, settings) as two:
        bank = BankClient(one, settings)
        await bank.merchant("M-PH")
        person_id, card = await credited_account(src, bank, 10_000)
        terminal = bank.as_("merchant", sub="M-PH")
        sent = {**body, "card_number": card}
        answers = await asyncio.gather(*(http.post("/v1/pos/authorisations", json=sent, headers=terminal)
                                         for http in (one, two) * 4))
        reused = await one.post("/v1/pos/authorisations", json={**sent, "amount_fen": 3_001}, headers=terminal)
        # A wrong PIN resent counts once towards the lock (3 wrong ones lock the card).
        wrong = {**sent, "transaction_id": "T20260105-000418", "pin": "999999"}
        wrongs = [(await http.post("/v1/pos/authorisations", json=wrong, headers=terminal)).json()["response_code"]
                  for http in (one, two, one)]
    async with running_service(create, settings) as restarted:
        after_restart = await restarted.post("/v1/pos/authorisations", json=sent, headers=terminal)
        account = await BankClient(restarted, settings).wait_account(person_id)
        events = await bank_events(settings, lambda es: bool(named(es, "PurchaseDeclined")))

    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1, "every resend gets the first answer"
    first = answers[0].json()
    assert (first["response_code"], first["balance_after_fen"]) == ("00", 7_000)
    assert after_restart.status_code == 200 and after_restart.json() == first
    assert reused.status_code == 409 and "T20260105-000417" in reused.json()["detail"]
    assert wrongs == ["55", "55", "55"]
    assert (account["balance_fen"], account["password_locked"]) == (7_000, False)
    [authorised] = named(events, "PurchaseAuthorised")
    assert authorised.data.authorisation_id == first["authorisation_id"]  # type: ignore[attr-defined]
    assert len(named(events, "PurchaseDeclined")) == 1


async def test_under_the_nightly_policy_a_loss_is_applied_when_the_business_day_ends(settings: Settings) -> None:
    """The what-if ``medcard compare`` weighs: the bank keeps the day's loss reports and
    applies them in one batch when the clock moves on, so the card still buys meanwhile."""
    from pymongo import AsyncMongoClient

    from shared.events import BusinessDateAdvanced

    nightly = settings.model_copy(update={"bank_loss_propagation": "nightly"})
    async with EventSource(nightly) as src, running_service(create, nightly) as http:
        bank = BankClient(http, nightly)
        await bank.merchant("M-PH")
        person_id, card = await credited_account(src, bank, 5_000)
        await src.publish(CardLost(person_id=person_id, card_number=card, channel="online", voucher="V1",
                                   business_date=date(2026, 2, 3), letter_reference=None), person_id)
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(nightly.mongo_url)
        accounts = mongo[nightly.database("bank")]["accounts"]

        async def kept() -> bool:
            return (await accounts.find_one({"_id": person_id, "losses_pending": True})) is not None
        await eventually(kept)
        inside = await bank.swipe(card, PIN, "M-PH", 1_000)  # inside the window: still approved
        assert (inside["approved"], inside["response_code"]) == (True, "00")

        await src.publish(BusinessDateAdvanced(date=date(2026, 2, 4), previous_date=date(2026, 2, 3)), "clock")
        await bank.wait_account(person_id, lambda a: a["cards"][0]["state"] == "lost")
        assert await accounts.find_one({"_id": person_id, "losses_pending": True}) is None
        await mongo.close()
        after = await bank.swipe(card, PIN, "M-PH", 1_000)
        assert (after["approved"], after["response_code"]) == (False, "41")
        events = await bank_events(nightly, lambda es: bool(named(es, "CardBlocked")))
    [blocked] = named(events, "CardBlocked")
    assert blocked.data.card_number == card  # type: ignore[attr-defined]
