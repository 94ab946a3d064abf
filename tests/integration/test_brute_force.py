"""Brute force against the real services: the login lockout and the card password (PIN)
lockout hold under repeated and concurrent attempts, the right secret is refused while
locked, and only the documented way unlocks (the time window for a login, a teller's reset
on the ID card for a PIN). An unknown account costs a password verification too."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from services.bank.app import create as create_bank
from services.identity.handlers import WRONG_LOGIN, WRONG_STAFF_LOGIN
from services.identity.app import create as create_identity
from services.identity.domain import Person
from shared import security
from shared.settings import Settings
from tests.helpers import auth, running_service
from tests.integration.bank_support import BankClient, EventSource, bank_events, funded_account, named

from .cards_support import OPERATOR_PASSWORD, events_of, id_number, identity_settings, names, register_person
from .cards_support import open_account as open_account_with_code

pytestmark = pytest.mark.infra
ATTEMPTS = 12
PIN, NEW_PIN = "246810", "135790"


async def open_account(client: httpx.AsyncClient, settings: Settings, serial: int, account: str,
                       password: str) -> str:
    number = id_number(serial)
    person_id = await register_person(client, auth(settings, "clerk"), number=number)
    opened = await open_account_with_code(client, settings, person_id=person_id, number=number, account=account,
                                          password=password)
    assert opened.status_code == 201, opened.text
    return person_id


async def person_doc(settings: Settings, person_id: str) -> Person:
    """The person as identity stored it (its lock included)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url, tz_aware=True)
    try:
        doc = await client[settings.database("identity")]["persons"].find_one({"_id": person_id})
    finally:
        await client.close()
    assert doc is not None
    return Person.model_validate(doc)


async def test_concurrent_wrong_logins_lock_once_and_the_right_password_is_refused_while_locked(
    settings: Settings,
) -> None:
    strict = identity_settings(settings.model_copy(update={"login_max_failures": 3, "login_lock_seconds": 3600}))
    async with running_service(create_identity, strict) as client:
        person_id = await open_account(client, settings, 801, "brute01", "right-password")
        wrong = {"account_number": "brute01", "password": "wrong-password"}
        right = {"account_number": "brute01", "password": "right-password"}

        answers = await asyncio.gather(*(client.post("/v1/login", json=wrong) for _ in range(ATTEMPTS)))
        refused_right = await client.post("/v1/login", json=right)
        later_wrong = await client.post("/v1/login", json=wrong)
        refused_again = await client.post("/v1/login", json=right)

        # Staff accounts lock the same way.
        operator = await client.post("/v1/staff/login", json={"username": "operator", "password": OPERATOR_PASSWORD})
        made = await client.post("/v1/staff", json={"username": "teller-bf", "password": "teller-secret-1",
                                                    "role": "teller"},
                                 headers={"Authorization": f"Bearer {operator.json()['access_token']}"})
        assert made.status_code == 201, made.text
        staff_wrong = {"username": "teller-bf", "password": "not-the-secret"}
        staff_answers = await asyncio.gather(*(client.post("/v1/staff/login", json=staff_wrong)
                                               for _ in range(ATTEMPTS)))
        staff_right = await client.post("/v1/staff/login", json={"username": "teller-bf",
                                                                  "password": "teller-secret-1"})
        events = await events_of(settings, "identity", person_id, 4)
        stored = await person_doc(settings, person_id)

    # The issue changes these answers: a lock is never told apart from a wrong password or an
    # unknown account (same 401, same body); it still holds, and the right password gets no token.
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {401: ATTEMPTS}, statuses  # max_failures = 3: the third locks
    assert {a.json()["detail"] for a in answers} == {WRONG_LOGIN}
    assert (refused_right.status_code, later_wrong.status_code, refused_again.status_code) == (401, 401, 401)
    assert refused_right.json() == later_wrong.json() == answers[0].json()
    assert "access_token" not in refused_right.text and "access_token" not in refused_again.text
    assert names(events) == ["PersonRegistered", "OnlineAccountCodeIssued", "OnlineAccountOpened",
                             "OnlineAccountLocked"]
    assert events[3].data.failures == 3  # type: ignore[attr-defined]
    # Tries while locked neither extend the lock nor lock again.
    assert stored.account is not None
    assert stored.account.locked_until == events[3].data.locked_until  # type: ignore[attr-defined]
    assert Counter(a.status_code for a in staff_answers) == {401: ATTEMPTS}
    assert staff_right.status_code == 401 and "access_token" not in staff_right.text
    assert staff_right.json() == staff_answers[0].json()


async def test_a_locked_login_opens_again_only_when_its_window_has_passed(settings: Settings) -> None:
    short = identity_settings(settings.model_copy(update={"login_max_failures": 2, "login_lock_seconds": 2}))
    async with running_service(create_identity, short) as client:
        person_id = await open_account(client, settings, 802, "brute02", "right-password")
        wrong = {"account_number": "brute02", "password": "wrong-password"}
        first = await client.post("/v1/login", json=wrong)
        locking = await client.post("/v1/login", json=wrong)
        [*_, locked] = await events_of(settings, "identity", person_id, 4)
        # Wait until the lock recorded in the event has passed on this machine's clock
        # (the service runs in this process), then the right password opens the account.
        until = locked.data.locked_until  # type: ignore[attr-defined]
        while datetime.now(UTC) <= until:
            await asyncio.sleep(max(0.05, (until - datetime.now(UTC)).total_seconds()))
        right = await client.post("/v1/login", json={"account_number": "brute02", "password": "right-password"})
        # The run of failures starts again from zero after the lock.
        after = await client.post("/v1/login", json=wrong)

    assert (first.status_code, locking.status_code) == (401, 401)
    assert locked.name == "OnlineAccountLocked"
    assert right.status_code == 200 and right.json()["person_id"] == person_id
    assert after.status_code == 401


async def test_an_unknown_account_costs_a_password_verification_like_a_wrong_password(settings: Settings) -> None:
    async with running_service(create_identity, identity_settings(settings)) as client:
        await open_account(client, settings, 803, "brute03", "right-password")

        async def verified_by(body: dict[str, str], path: str = "/v1/login") -> tuple[int, int, str]:
            before = security.verifications()
            response = await client.post(path, json=body)
            return response.status_code, security.verifications() - before, response.json()["detail"]

        unknown = await verified_by({"account_number": "nobody-here", "password": "wrong-password"})
        wrong = await verified_by({"account_number": "brute03", "password": "wrong-password"})
        unknown_staff = await verified_by({"username": "nobody", "password": "wrong-password"}, "/v1/staff/login")
        metrics = (await client.get("/metrics", headers=auth(settings, "operator"))).text

    assert unknown == wrong == (401, 1, WRONG_LOGIN)
    assert unknown_staff == (401, 1, WRONG_STAFF_LOGIN)
    assert re.search(r"^medcard_secret_verifications_total \d+", metrics, re.MULTILINE), metrics[-400:]


async def test_concurrent_wrong_pins_lock_the_card_once_and_only_a_teller_reset_unlocks_it(settings: Settings) -> None:
    async with EventSource(settings) as src, running_service(create_bank, settings) as http:
        bank = BankClient(http, settings)
        await bank.merchant("M-PH")
        person_id, number = await src.person()
        card = await src.card(person_id)
        await src.contribution(person_id, "2026-01", 10_000)
        await bank.wait_account(person_id, lambda a: bool(a["pending_contributions"]))
        await bank.set_pin(card, PIN, number)
        await src.month_end("2026-01")
        await bank.wait_account(person_id, lambda a: a["balance_fen"] == 10_000)
        _, someone_elses = await src.person()
        holder, teller = bank.as_("cardholder", person_id=person_id), bank.as_("teller")
        password = f"/v1/cards/{card}/password"

        approved = await bank.swipe(card, PIN, "M-PH", 1_000)  # the right PIN, remembered by the bank
        wrong = [f"{n:06d}" for n in range(100_000, 100_000 + ATTEMPTS)]
        answers = await asyncio.gather(*(bank.swipe(card, pin, "M-PH", 100) for pin in wrong))
        right_while_locked = await bank.swipe(card, PIN, "M-PH", 100)
        change_while_locked = await http.post(f"{password}/change", json={"old_pin": PIN, "new_pin": NEW_PIN},
                                              headers=holder)
        set_while_locked = await http.put(password, json={"pin": NEW_PIN}, headers=holder)
        reset_by_holder = await http.post(f"{password}/reset", json={"id_number": number, "new_pin": NEW_PIN},
                                          headers=holder)
        reset_on_wrong_id = await http.post(f"{password}/reset", headers=teller,
                                            json={"id_number": someone_elses, "new_pin": NEW_PIN})
        still_locked = await bank.wait_account(person_id)
        reset = await http.post(f"{password}/reset", json={"id_number": number, "new_pin": NEW_PIN}, headers=teller)
        old_after_reset = await bank.swipe(card, PIN, "M-PH", 100)
        new_after_reset = await bank.swipe(card, NEW_PIN, "M-PH", 100)
        final = await bank.wait_account(person_id)
        events = await bank_events(settings, lambda es: len(named(es, "PurchaseAuthorised")) >= 2)

    assert approved["response_code"] == "00"
    codes = Counter(a["response_code"] for a in answers)
    assert codes == {"55": 2, "75": ATTEMPTS - 2}, codes  # pin_max_failures = 3: the third locks
    assert right_while_locked["response_code"] == "75"
    refusals = (change_while_locked.status_code, set_while_locked.status_code, reset_by_holder.status_code,
                reset_on_wrong_id.status_code)
    assert refusals == (423, 409, 403, 403), refusals
    assert still_locked["password_locked"] is True and still_locked["balance_fen"] == 9_000
    assert reset.status_code == 200 and reset.json()["locked"] is False
    assert (old_after_reset["response_code"], new_after_reset["response_code"]) == ("55", "00")
    assert final["balance_fen"] == 8_900 and final["password_locked"] is False
    assert [e.name for e in events if e.name.startswith("CardPassword")] == [
        "CardPasswordSet", "CardPasswordLocked", "CardPasswordReset"]
    assert [e.data.authorisation_id for e in named(events, "PurchaseAuthorised")] == [  # type: ignore[attr-defined]
        approved["authorisation_id"], new_after_reset["authorisation_id"]]


async def test_wrong_old_pins_given_to_change_the_password_count_towards_the_lock(settings: Settings) -> None:
    async with EventSource(settings) as src, running_service(create_bank, settings) as http:
        bank = BankClient(http, settings)
        await bank.merchant("M-PH")
        person_id, card = await funded_account(src, bank, 5_000, "2026-01", pin=PIN)
        holder = bank.as_("cardholder", person_id=person_id)
        change = f"/v1/cards/{card}/password/change"
        wrong = [{"old_pin": f"{n:06d}", "new_pin": NEW_PIN} for n in range(200_000, 200_000 + ATTEMPTS)]
        answers = await asyncio.gather(*(http.post(change, json=body, headers=holder) for body in wrong))
        right_change = await http.post(change, json={"old_pin": PIN, "new_pin": NEW_PIN}, headers=holder)
        at_the_pos = await bank.swipe(card, PIN, "M-PH", 100)
        account = await bank.wait_account(person_id)
        events = await bank_events(settings, lambda es: bool(named(es, "CardPasswordLocked")))

    statuses = Counter(a.status_code for a in answers)
    assert statuses == {403: 2, 423: ATTEMPTS - 2}, statuses
    assert right_change.status_code == 423 and at_the_pos["response_code"] == "75"
    assert account["password_locked"] is True
    assert [e.name for e in events if e.name.startswith("CardPassword")] == ["CardPasswordSet", "CardPasswordLocked"]
