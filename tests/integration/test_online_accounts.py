"""Opening an online account proves possession of the registered mobile, a taken-over
account is recovered at the agency counter, a card's first PIN needs its holder or the ID
card, and the public routes that could tell who is registered answer the same, in the same
time, and only so often. Against the real Kafka broker and MongoDB-wire server, the SMS
going out through the real notifications service and its gateway simulator."""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from services.bank.app import create as create_bank
from services.cards.app import create as create_cards
from services.identity.handlers import CODE_SENT, WRONG_LOGIN
from services.identity.app import create as create_identity
from services.identity.domain import ACCOUNT_EXISTS, CODE_REFUSED
from shared.settings import Settings
from tests.helpers import auth, eventually, running_service
from tests.integration.bank_support import BankClient, EventSource

from .cards_support import (
    events_of,
    id_number,
    identity_settings,
    names,
    open_account,
    open_account_and_login,
    register_person,
    sms_codes,
)
from .notifications_support import running_notifications

pytestmark = pytest.mark.infra
NAME = "Wang Fang"
CODE_IN_TEXT = re.compile(r"验证码(\d{6})")


async def timed(call: Callable[[], Awaitable[httpx.Response]]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await call()
    return response, time.monotonic() - started


async def stored_strings(settings: Settings, service: str) -> str:
    """Every document of a service's database, as text."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:
        db = client[settings.database(service)]
        docs = [d for name in await db.list_collection_names() if name not in ("sms_sent", "sms_outbox")
                for d in await db[name].find({}).to_list()]
    finally:
        await client.close()
    return repr(docs)


async def test_the_code_goes_by_sms_to_the_registered_mobile_and_nowhere_else_in_clear(settings: Settings) -> None:
    clerk, operator = auth(settings, "clerk"), auth(settings, "operator")
    async with running_service(create_identity, identity_settings(settings)) as identity, \
            running_notifications(settings) as (notifications, _):
        number = id_number(601)
        person_id = await register_person(identity, clerk, number=number, mobile="13812345678")
        asked = await identity.post("/v1/accounts/codes", json={"name": NAME, "id_number": number})
        assert (asked.status_code, asked.json()) == (202, {"detail": CODE_SENT, "expires_in": 300})

        # The phone: the SMS the gateway delivered to the registered mobile carries the code.
        sms: list[dict[str, Any]] = []

        async def delivered() -> bool:
            answer = await notifications.get("/v1/sms-gateway/outbox", headers=operator,
                                             params={"person_id": person_id})
            sms[:] = answer.json()["data"]
            return bool(sms)
        await eventually(delivered, timeout=60)
        [text] = [s["text"] for s in sms]
        found = CODE_IN_TEXT.search(text)
        assert found, text
        code = found.group(1)
        assert sms[0]["mobile"] == "138****5678" and sms[0]["urgent"] is True

        # The code is in no event, no answer, no stored message and no database in clear.
        [event] = [e for e in await events_of(settings, "identity", person_id, 2) if e.name == "OnlineAccountCodeIssued"]
        assert code not in event.model_dump_json() and event.data.code_sealed.startswith("v1.")  # type: ignore[attr-defined]
        assert code not in asked.text
        messages = await notifications.get(f"/v1/persons/{person_id}/messages", headers=operator)
        [message] = messages.json()["data"]
        assert message["template"] == "account_code" and message["status"] == "sent"
        assert code not in messages.text and "******" in message["text"]
        assert code not in await stored_strings(settings, "identity")
        assert code not in await stored_strings(settings, "notifications")  # the gateway's outbox is the phone

        # With the code, the account opens; the code is used up.
        opened = await identity.post("/v1/accounts", json={"name": NAME, "id_number": number, "code": code,
                                                           "account_number": "wangfang61", "password": "s3cret-pass"})
        assert opened.status_code == 201, opened.text
        again = await identity.post("/v1/accounts", json={"name": NAME, "id_number": number, "code": code,
                                                          "account_number": "wangfang62", "password": "s3cret-pass"})
        assert (again.status_code, again.json()["detail"]) == (422, CODE_REFUSED)


async def test_name_and_id_number_alone_open_nothing_and_wrong_codes_void_the_code(settings: Settings) -> None:
    clerk = auth(settings, "clerk")
    strict = identity_settings(settings).model_copy(update={"identity_account_code_max_tries": 3})
    async with running_service(create_identity, strict) as identity:
        number = id_number(602)
        person_id = await register_person(identity, clerk, number=number)
        body = {"name": NAME, "id_number": number, "account_number": "takeover1", "password": "s3cret-pass"}
        # The attacker of the issue knows name and ID number: without the code, nothing opens.
        no_code = await identity.post("/v1/accounts", json=body)
        assert no_code.status_code == 422 and "code" in no_code.json()["detail"]
        for guess in ("000000", "123456"):
            refused = await identity.post("/v1/accounts", json={**body, "code": guess})
            assert (refused.status_code, refused.json()["detail"]) == (422, CODE_REFUSED)
        assert (await identity.post("/v1/accounts/codes", json={"name": NAME, "id_number": number})).status_code == 202
        [code] = await sms_codes(settings, person_id)
        wrong = str((int(code) + 1) % 1_000_000).zfill(6)
        for _ in range(3):
            refused = await identity.post("/v1/accounts", json={**body, "code": wrong})
            assert (refused.status_code, refused.json()["detail"]) == (422, CODE_REFUSED)
        # Three wrong tries voided it: even the right code is refused now.
        late = await identity.post("/v1/accounts", json={**body, "code": code})
        assert (late.status_code, late.json()["detail"]) == (422, CODE_REFUSED)
        person = await identity.get(f"/v1/persons/{person_id}", headers=clerk)
        assert person.json()["account_number"] is None


async def persons_commands(identity: httpx.AsyncClient, operator: dict[str, str],
                           collections: tuple[str, ...] = ("persons", "account_numbers")) -> dict[str, int]:
    """Identity's database commands on ``collections`` so far, from /metrics,
    but for its relay's (the outbox's scans by ``pending``, its clean-ups by ``_id,version``)."""
    text = (await identity.get("/metrics", headers=operator)).text
    found = re.findall(r'^medcard_db_commands_total\{collection="(\w+)",command="(\w+)"'
                       r',shape="([^"]*)"\} ([0-9.e+]+)$', text, re.MULTILINE)
    return {f"{command} {collection} [{shape}]": int(float(n)) for collection, command, shape, n in found
            if collection in collections and shape not in ("pending", "_id,version")}


async def test_a_code_and_an_account_cost_one_read_of_the_person_each(settings: Settings) -> None:
    """The person found by the ID number's digest is the document each command writes over:
    asking for a code reads it once and writes it once; opening the account (a right code is
    checked without a write) reads it once, claims the number and writes it once."""
    clerk, operator = auth(settings, "clerk"), auth(settings, "operator")
    async with running_service(create_identity, identity_settings(settings)) as identity:
        number = id_number(607)
        person_id = await register_person(identity, clerk, number=number)
        before = await persons_commands(identity, operator)
        asked = await identity.post("/v1/accounts/codes", json={"name": NAME, "id_number": number})
        assert asked.status_code == 202, asked.text
        after_code = await persons_commands(identity, operator)
        [code] = await sms_codes(settings, person_id)
        opened = await identity.post("/v1/accounts", json={"name": NAME, "id_number": number, "code": code,
                                                           "account_number": "wangfang67", "password": "s3cret-pass"})
        assert opened.status_code == 201, opened.text
        after_account = await persons_commands(identity, operator)

        def delta(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
            return {k: b.get(k, 0) - a.get(k, 0) for k in b if b.get(k, 0) != a.get(k, 0)}
        assert delta(before, after_code) == {"find persons [id_number_digest]": 1, "update persons [_id,rev]": 1}
        assert delta(after_code, after_account) == {"find persons [id_number_digest]": 1,
                                                    "insert account_numbers [-]": 1, "update persons [_id,rev]": 1}
        person = await identity.get(f"/v1/persons/{person_id}", headers=clerk)
        assert person.json()["account_number"] == "wangfang67"


async def test_a_registration_reads_only_whether_the_id_number_is_free(settings: Settings) -> None:
    """A person's id is new (no read of it before the insert), and a unit found once is known
    (units are never changed or removed): registering a person costs one read and one insert."""
    clerk, operator = auth(settings, "clerk"), auth(settings, "operator")
    async with running_service(create_identity, identity_settings(settings)) as identity:
        unit = (await identity.post("/v1/units", json={"name": "Hongxing Machinery"}, headers=clerk)).json()["unit_id"]
        body = {"name": NAME, "mobile": "13800138000", "household_number": "110105001234", "unit_id": unit}
        first = await identity.post("/v1/persons", headers=clerk, json={**body, "id_number": id_number(608)})
        assert first.status_code == 201, first.text
        before = await persons_commands(identity, operator, ("persons", "units"))
        second = await identity.post("/v1/persons", headers=clerk, json={**body, "id_number": id_number(609)})
        assert second.status_code == 201, second.text
        after = await persons_commands(identity, operator, ("persons", "units"))
        assert {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)} == {
            "find persons [id_number_digest]": 1, "insert persons [-]": 1}
        taken = await identity.post("/v1/persons", headers=clerk, json={**body, "id_number": id_number(609)})
        assert taken.status_code == 409, taken.text
        unknown = await identity.post("/v1/persons", headers=clerk, json={**body, "id_number": id_number(610),
                                                                          "unit_id": "U-not-registered"})
        assert unknown.status_code in (404, 422) and "U-not-registered" in unknown.text, unknown.text


async def test_an_expired_code_is_refused(settings: Settings) -> None:
    clerk = auth(settings, "clerk")
    short = identity_settings(settings).model_copy(update={"identity_account_code_seconds": 1})
    async with running_service(create_identity, short) as identity:
        number = id_number(603)
        person_id = await register_person(identity, clerk, number=number)
        await identity.post("/v1/accounts/codes", json={"name": NAME, "id_number": number})
        [code] = await sms_codes(settings, person_id)
        await asyncio.sleep(1.2)
        late = await identity.post("/v1/accounts", json={"name": NAME, "id_number": number, "code": code,
                                                         "account_number": "late0001", "password": "s3cret-pass"})
        assert (late.status_code, late.json()["detail"]) == (422, CODE_REFUSED)


async def test_a_taken_over_account_is_closed_at_the_counter_on_the_id_card_and_the_owner_opens_theirs(
    settings: Settings,
) -> None:
    clerk = auth(settings, "clerk")
    async with running_service(create_identity, identity_settings(settings)) as identity:
        number = id_number(604)
        person_id = await register_person(identity, clerk, number=number)
        # Someone (who had the phone for a moment) opened the account under their number.
        taken = await open_account(identity, settings, person_id=person_id, number=number, account="intruder1",
                                   password="intruder-pass")
        assert taken.status_code == 201
        # The owner, with the code on their own phone, is told to go to the counter; the
        # attacker's account number is not shown.
        owner = await open_account(identity, settings, person_id=person_id, number=number, account="wangfang64",
                                   nth_code=2)
        assert (owner.status_code, owner.json()["detail"]) == (409, ACCOUNT_EXISTS)
        assert "intruder1" not in owner.text

        recovery = f"/v1/persons/{person_id}/account/recovery"
        someone_else = await identity.post(recovery, headers=clerk, json={"id_number": id_number(605)})
        assert someone_else.status_code == 403
        by_teller = await identity.post(recovery, headers=auth(settings, "teller"), json={"id_number": number})
        assert by_teller.status_code == 403
        closed = await identity.post(recovery, headers=clerk, json={"id_number": number})
        assert closed.status_code == 200 and closed.json() == {"person_id": person_id,
                                                               "closed_account_number": "intruder1"}
        intruder = await identity.post("/v1/login", json={"account_number": "intruder1", "password": "intruder-pass"})
        assert intruder.status_code == 401

        me = await open_account_and_login(identity, settings, person_id, number, "wangfang64", nth_code=3)
        mine = await identity.get(f"/v1/persons/{person_id}", headers=me)
        assert mine.json()["account_number"] == "wangfang64"
        events = await events_of(settings, "identity", person_id, 7)
        assert names(events)[4:] == ["OnlineAccountClosed", "OnlineAccountCodeIssued", "OnlineAccountOpened"]


async def test_a_cards_first_pin_needs_the_holder_or_a_teller_with_the_id_card(settings: Settings) -> None:
    async with EventSource(settings) as src, running_service(create_bank, settings) as http:
        bank = BankClient(http, settings)
        person_id, number = await src.person()
        card = await src.card(person_id)
        await bank.wait_account(person_id)
        password, teller = f"/v1/cards/{card}/password", bank.as_("teller")
        no_id = await http.put(password, headers=teller, json={"pin": "246810"})
        assert no_id.status_code == 422 and "ID card" in no_id.json()["detail"]
        _, someone_else = await src.person()
        wrong_id = await http.put(password, headers=teller, json={"pin": "246810", "id_number": someone_else})
        assert wrong_id.status_code == 403
        assert (await bank.account(person_id))["password_set"] is False  # type: ignore[index]
        right = await http.put(password, headers=teller, json={"pin": "246810", "id_number": number})
        assert right.status_code == 200 and right.json()["password_set"] is True


async def test_registered_or_not_the_answers_are_the_same_and_take_the_same_time(settings: Settings) -> None:
    clerk = auth(settings, "clerk")
    floor = 0.3
    config = identity_settings(settings).model_copy(update={
        "uniform_answer_seconds": floor, "login_max_failures": 2})
    async with running_service(create_identity, config) as identity:
        known = id_number(606)
        person_id = await register_person(identity, clerk, number=known)
        opened = await open_account(identity, settings, person_id=person_id, number=known, account="known606")
        assert opened.status_code == 201
        unknown = id_number(607)

        async def ask(number: str) -> httpx.Response:
            return await identity.post("/v1/accounts/codes", json={"name": NAME, "id_number": number})

        async def open_(number: str) -> httpx.Response:
            return await identity.post("/v1/accounts", json={"name": NAME, "id_number": number, "code": "000000",
                                                             "account_number": "someone1", "password": "s3cret-pass"})

        async def log_in(account: str) -> httpx.Response:
            return await identity.post("/v1/login", json={"account_number": account, "password": "wrong-pass"})

        for _ in range(2):  # lock the known account
            await log_in("known606")
        samples: dict[str, list[tuple[httpx.Response, float]]] = {}
        for label, call in {
            "code known": lambda: ask(known), "code unknown": lambda: ask(unknown),
            "open known": lambda: open_(known), "open unknown": lambda: open_(unknown),
            "login locked": lambda: log_in("known606"), "login unknown": lambda: log_in("nobody606"),
        }.items():
            samples[label] = [await timed(call) for _ in range(3)]

    for pair in (("code known", "code unknown"), ("open known", "open unknown"), ("login locked", "login unknown")):
        answers = {(r.status_code, r.text) for label in pair for r, _ in samples[label]}
        assert len(answers) == 1, (pair, answers)
        medians = [statistics.median(t for _, t in samples[label]) for label in pair]
        assert all(m >= floor for m in medians), (pair, medians)
        assert abs(medians[0] - medians[1]) < 0.1, (pair, medians)
    assert samples["login locked"][0][0].json()["detail"] == WRONG_LOGIN


async def test_account_opening_and_login_are_rate_limited_per_id_per_account_and_per_client(
    settings: Settings,
) -> None:
    """Two identity replicas on one database count together: limits hold across replicas."""
    config = identity_settings(settings).model_copy(update={
        "rate_limit_per_id_number": "3/hour", "rate_limit_per_account_number": "4/hour",
        "rate_limit_per_client": "12/minute", "uniform_answer_seconds": 0.0})
    async with running_service(create_identity, config) as one, running_service(create_identity, config) as two:
        known, unknown = id_number(608), id_number(609)
        await register_person(one, auth(settings, "clerk"), number=known)
        replicas = [one, two]

        def ask(i: int, number: str) -> Awaitable[httpx.Response]:
            return replicas[i % 2].post("/v1/accounts/codes", json={"name": NAME, "id_number": number})
        per_id = {number: [(await ask(i, number)).status_code for i in range(5)] for number in (known, unknown)}
        refused = await ask(0, known)
        logins = [(await replicas[i % 2].post("/v1/login", json={"account_number": "probe001", "password": "x"}))
                  .status_code for i in range(6)]
        other_accounts = [(await one.post("/v1/login", json={"account_number": f"probe{i:03d}", "password": "x"}))
                          .status_code for i in range(2, 9)]

    assert per_id == {known: [202, 202, 202, 429, 429], unknown: [202, 202, 202, 429, 429]}, per_id
    assert refused.json()["error"] == "too_many_requests" and int(refused.headers["retry-after"]) > 0
    assert logins == [401, 401, 401, 401, 429, 429], logins
    # Each route counts its own: after 6 logins the client has 6 more a minute, whatever the
    # account number, and the 13th is refused.
    assert other_accounts == [401] * 6 + [429], other_accounts


async def test_the_voucher_query_is_limited_per_voucher_and_per_client_and_answers_masked_data(
    settings: Settings,
) -> None:
    config = settings.model_copy(update={"rate_limit_per_voucher": "3/hour", "rate_limit_per_client": "8/minute",
                                         "uniform_answer_seconds": 0.2})
    clerk = auth(settings, "clerk")
    async with running_service(create_identity, identity_settings(settings)) as identity, \
            running_service(create_cards, config) as cards:
        number = id_number(610)
        person_id = await register_person(identity, clerk, number=number)
        me = await open_account_and_login(identity, settings, person_id, number, "wangfang70")

        async def issued() -> bool:
            r = await cards.post("/v1/cards", headers=clerk, json={"person_id": person_id})
            return r.status_code == 201
        await eventually(issued, timeout=30)
        lost = await cards.post("/v1/loss-reports/online", headers=me,
                                json={"name": NAME, "id_number": number, "mobile": "13800138000"})
        assert lost.status_code in (201, 409, 404) or lost.status_code == 200, lost.text
        voucher = lost.json().get("voucher")
        assert voucher, lost.text

        query = "/v1/loss-reports/query"
        right, took = await timed(lambda: cards.post(query, json={"voucher": voucher, "id_number": number}))
        assert right.status_code == 200
        assert set(right.json()) == {"voucher", "card_number_masked", "channel", "business_date", "card_state",
                                     "blocked", "block"}  # issue 17: whether the bank stopped the card
        assert "*" in right.json()["card_number_masked"] and number not in right.text
        # The oracle of the issue: wrong serials for one voucher are refused after 3 a voucher.
        wrong = [(await timed(lambda i=i: cards.post(query, json={"voucher": voucher, "id_number": id_number(611 + i)})))
                 for i in range(3)]
        unknown_voucher, took_unknown = await timed(
            lambda: cards.post(query, json={"voucher": "V000000000000", "id_number": number}))
        statuses = [r.status_code for r, _ in wrong]
        many = [(await cards.post(query, json={"voucher": f"V00000000{i:04d}", "id_number": number})).status_code
                for i in range(4)]

    assert statuses == [404, 404, 429], statuses  # the right query was the voucher's first
    assert wrong[0][0].json() == unknown_voucher.json()  # wrong ID or unknown voucher: one answer
    assert took >= 0.2 and took_unknown >= 0.2 and abs(took - took_unknown) < 0.1
    assert 429 in many, many  # the client's 8 a minute ran out, whatever the voucher
