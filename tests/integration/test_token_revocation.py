"""A cardholder's tokens issued before their online account was locked (too many failed
logins) or closed at the counter are refused by every service that serves cardholders,
while a token issued after works; within identity, the same for a locked staff user.
Against the real Kafka broker and MongoDB-wire server, the four services in this process."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from services.bank.app import create as create_bank
from services.cards.app import create as create_cards
from services.identity.app import create as create_identity
from shared.revocations import REVOKED, STAFF_REVOKED
from shared.settings import Settings
from tests.helpers import auth, eventually, running_service

from .cards_support import id_number, identity_settings, open_account, open_account_and_login, register_person
from .notifications_support import running_notifications

pytestmark = pytest.mark.infra
LOCK_SECONDS = 1
ADMITTED = {"identity": 200, "cards": 200, "bank": 404, "notifications": 200}
"""What each service answers a valid token of the person (the bank opens the account with
the first card: until then its 404 says the token passed and there is no account)."""


def reads(person_id: str) -> dict[str, str]:
    """A cardholder's own data at each service."""
    return {"identity": f"/v1/persons/{person_id}", "cards": f"/v1/persons/{person_id}/cards",
            "bank": f"/v1/accounts/{person_id}", "notifications": f"/v1/persons/{person_id}/messages"}


async def statuses(clients: dict[str, httpx.AsyncClient], person_id: str, headers: dict[str, str]) -> dict[str, int]:
    paths = reads(person_id)
    return {name: (await client.get(paths[name], headers=headers)).status_code for name, client in clients.items()}


def admitted(clients: dict[str, httpx.AsyncClient]) -> dict[str, int]:
    return {name: ADMITTED[name] for name in clients}


def refused(clients: dict[str, httpx.AsyncClient]) -> dict[str, int]:
    return dict.fromkeys(clients, 401)


async def wait_statuses(clients: dict[str, httpx.AsyncClient], person_id: str, headers: dict[str, str],
                        expected: dict[str, int]) -> None:
    """Until every service answers the token as expected (the events travel by Kafka)."""
    last: dict[str, int] = {}

    async def all_answer() -> bool:
        last.update(await statuses(clients, person_id, headers))
        return last == expected
    try:
        await eventually(all_answer, timeout=30)
    except AssertionError as err:
        raise AssertionError(f"{err}; last answers {last}") from None


async def test_tokens_issued_before_a_lock_are_refused_everywhere_and_a_later_login_works(
        settings: Settings) -> None:
    clerk = auth(settings, "clerk")
    config = identity_settings(settings).model_copy(update={"login_max_failures": 2,
                                                            "login_lock_seconds": LOCK_SECONDS})
    async with running_service(create_identity, config) as identity, \
            running_service(create_cards, settings) as cards, running_service(create_bank, settings) as bank, \
            running_notifications(settings) as (notifications, _):
        clients = {"identity": identity, "cards": cards, "bank": bank, "notifications": notifications}
        number = id_number(701)
        person_id = await register_person(identity, clerk, number=number)
        old = await open_account_and_login(identity, settings, person_id, number, "locked701")
        await wait_statuses(clients, person_id, old, admitted(clients))  # every service knows the person

        for _ in range(2):  # the second wrong password locks the account
            wrong = await identity.post("/v1/login", json={"account_number": "locked701", "password": "wrong-pass"})
            assert wrong.status_code == 401
        at_identity = await identity.get(reads(person_id)["identity"], headers=old)  # identity: at once
        answer = (at_identity.status_code, at_identity.json()["error"], at_identity.json()["detail"])
        assert answer == (401, "token_revoked", REVOKED)
        await wait_statuses(clients, person_id, old, refused(clients))
        for name, client in clients.items():
            answer = await client.get(reads(person_id)[name], headers=old)
            assert answer.json()["error"] == "token_revoked", (name, answer.text)

        await asyncio.sleep(LOCK_SECONDS + 0.2)  # the lock window passes
        login = await identity.post("/v1/login", json={"account_number": "locked701", "password": "s3cret-pass"})
        assert login.status_code == 200, login.text
        new = {"Authorization": f"Bearer {login.json()['access_token']}"}
        assert await statuses(clients, person_id, new) == admitted(clients)
        assert await statuses(clients, person_id, old) == refused(clients)  # the old one stays refused


async def test_tokens_issued_before_a_closure_at_the_counter_are_refused(settings: Settings) -> None:
    clerk = auth(settings, "clerk")
    async with running_service(create_identity, identity_settings(settings)) as identity, \
            running_service(create_bank, settings) as bank:
        clients = {"identity": identity, "bank": bank}
        number = id_number(702)
        person_id = await register_person(identity, clerk, number=number)
        intruder = await open_account_and_login(identity, settings, person_id, number, "intruder702")
        await wait_statuses(clients, person_id, intruder, admitted(clients))

        closed = await identity.post(f"/v1/persons/{person_id}/account/recovery", headers=clerk,
                                     json={"id_number": number})
        assert closed.status_code == 200, closed.text
        await wait_statuses(clients, person_id, intruder, refused(clients))

        opened = await open_account(identity, settings, person_id=person_id, number=number, account="owner702",
                                    nth_code=2)
        assert opened.status_code == 201, opened.text
        login = await identity.post("/v1/login", json={"account_number": "owner702", "password": "s3cret-pass"})
        owner = {"Authorization": f"Bearer {login.json()['access_token']}"}
        assert await statuses(clients, person_id, owner) == admitted(clients)


async def test_identity_refuses_a_locked_staff_users_earlier_tokens(settings: Settings) -> None:
    config = identity_settings(settings).model_copy(update={"login_max_failures": 2,
                                                            "login_lock_seconds": LOCK_SECONDS})
    async with running_service(create_identity, config) as identity:
        created = await identity.post("/v1/staff", headers=auth(settings, "operator"),
                                      json={"username": "clerk703", "role": "clerk", "password": "clerk-pass-703"})
        assert created.status_code == 201, created.text

        async def log_in(password: str) -> httpx.Response:
            return await identity.post("/v1/staff/login", json={"username": "clerk703", "password": password})

        old = {"Authorization": f"Bearer {(await log_in('clerk-pass-703')).json()['access_token']}"}
        assert (await identity.post("/v1/units", headers=old, json={"name": "Before the lock"})).status_code == 201
        for _ in range(2):
            assert (await log_in("wrong-pass")).status_code == 401
        at_identity = await identity.post("/v1/units", headers=old, json={"name": "After the lock"})
        answer = (at_identity.status_code, at_identity.json()["error"], at_identity.json()["detail"])
        assert answer == (401, "token_revoked", STAFF_REVOKED)
        await asyncio.sleep(LOCK_SECONDS + 0.2)
        new = {"Authorization": f"Bearer {(await log_in('clerk-pass-703')).json()['access_token']}"}
        assert (await identity.post("/v1/units", headers=new, json={"name": "A new login"})).status_code == 201
