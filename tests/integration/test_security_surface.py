"""The whole HTTP surface of every service refuses what it must: no valid token is 401,
the wrong role is 403, and one cardholder never reaches another person's data.

The operations come from each app itself; tests/integration/security_support.py maps every
one of them to infrastructure, public, or the roles it admits, and a route missing from
that map fails the first test."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.bank.app import create as create_bank
from services.cards.app import create as create_cards
from services.identity.app import create as create_identity
from services.notifications.app import create as create_notifications
from shared.settings import Settings
from tests.helpers import auth, eventually, running_service

from .cards_support import id_number, register_person, wait_known_to_cards
from .security_support import (
    INFRASTRUCTURE,
    OTHER_CARDHOLDER,
    PLACEHOLDERS,
    RESOLVED_FIRST,
    SOMEONE_ELSE,
    SURFACE,
    Guard,
    Operation,
    call,
    describe,
    invalid_credentials,
    protected,
    routes_of,
    token,
)

pytestmark = pytest.mark.infra

CREATE: dict[str, Callable[[Settings], FastAPI]] = {
    "identity": create_identity, "cards": create_cards, "bank": create_bank, "notifications": create_notifications,
}
SERVICES = sorted(CREATE)


def refused(status: int, path: str, who: str, *, placeholder: bool) -> bool:
    """403 to a wrong role, whether the card or receipt exists or not (a merchant got 404 for
    an unknown number and 403 for a real one: an oracle); 404 for another cardholder's card or
    receipt (concealed, as if unknown)."""
    if who == OTHER_CARDHOLDER and RESOLVED_FIRST.search(path) is not None:
        return status == 404
    return status == 403


async def refusals(service: str, client: httpx.AsyncClient, app: FastAPI, settings: Settings,
                   ops: list[tuple[Operation, Guard]], values: dict[str, str], *, placeholder: bool) -> list[str]:
    """Wrong answers to every wrong role and, on a person's data, to another cardholder."""
    wrong: list[str] = []
    for op, guard in ops:
        callers = [(role, token(settings, role, person_id=SOMEONE_ELSE)) for role in guard.wrong_roles()]
        if guard.owner:
            callers.append((OTHER_CARDHOLDER, token(settings, "cardholder", person_id=SOMEONE_ELSE)))
        for who, headers in callers:
            response = await call(client, app, op, values, headers)
            if not refused(response.status_code, op[1], who, placeholder=placeholder):
                wrong.append(describe(service, op, who, response))
    return wrong


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_is_infrastructure_public_or_protected(service: str, settings: Settings) -> None:
    app = CREATE[service](settings)
    answered = routes_of(app)
    mapped = INFRASTRUCTURE | set(SURFACE[service])
    assert answered - mapped == set(), f"{service}: routes neither public nor protected in security_support"
    assert mapped - answered == set(), f"{service}: mapped routes that the service no longer answers"


@pytest.mark.parametrize("service", SERVICES)
async def test_every_protected_operation_answers_401_without_a_valid_token(service: str, settings: Settings) -> None:
    app = CREATE[service](settings)
    wrong: list[str] = []
    async with running_service(lambda _: app, settings) as client:
        for op, guard in protected(service):
            for who, headers in invalid_credentials(settings, guard.admitted_role()).items():
                response = await call(client, app, op, PLACEHOLDERS, headers)
                if response.status_code != 401:
                    wrong.append(describe(service, op, who, response))
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize("service", SERVICES)
async def test_every_protected_operation_refuses_wrong_roles_and_other_cardholders(
    service: str, settings: Settings,
) -> None:
    app = CREATE[service](settings)
    async with running_service(lambda _: app, settings) as client:
        wrong = await refusals(service, client, app, settings, protected(service), PLACEHOLDERS, placeholder=True)
    assert wrong == [], "\n".join(wrong)


def answer_shape(response: httpx.Response, values: dict[str, str]) -> tuple[int, str]:
    """Status and body with the numbers of the request blanked out: what a caller learns."""
    text = response.text
    for key in ("card_number", "receipt_number"):
        text = text.replace(values[key], "<number>")
    return response.status_code, text


def person_scoped(service: str, values: dict[str, str]) -> list[tuple[Operation, Guard]]:
    """The protected operations whose path names only the given person's data."""
    def names(path: str) -> set[str]:
        return {part[1:-1] for part in path.split("/") if part.startswith("{")}
    return [(op, g) for op, g in protected(service) if names(op[1]) and names(op[1]) <= set(values)]


async def one_person_with_a_card_and_a_replacement(
    identity: httpx.AsyncClient, cards: httpx.AsyncClient, bank: httpx.AsyncClient, settings: Settings,
) -> dict[str, Any]:
    """A registered person, a card (reported lost at the bank) and a replacement receipt, known to the bank."""
    clerk, teller = auth(settings, "clerk"), auth(settings, "teller")
    number = id_number(471)
    person_id = await register_person(identity, clerk, number=number)
    await wait_known_to_cards(cards, clerk, person_id)
    issued = await cards.post("/v1/cards", json={"person_id": person_id}, headers=clerk)
    assert issued.status_code == 201, issued.text
    card = issued.json()["card_number"]
    lost = await cards.post("/v1/loss-reports/bank", headers=teller,
                            json={"card_number": card, "id_number": number, "letter_reference": "HX-2026-0031"})
    assert lost.status_code == 201, lost.text
    applied = await cards.post("/v1/replacements", json={"card_number": card, "id_number": number}, headers=clerk)
    assert applied.status_code == 201, applied.text

    async def bank_knows_the_card() -> bool:
        response = await bank.get(f"/v1/accounts/{person_id}", headers=teller)
        return response.status_code == 200 and card in response.text
    await eventually(bank_knows_the_card, timeout=30)
    return {"person_id": person_id, "card_number": card, "receipt_number": applied.json()["receipt_number"],
            "voucher": lost.json()["voucher"], "id_number": number}


async def test_a_real_persons_data_is_refused_to_another_cardholder_and_to_wrong_roles(settings: Settings) -> None:
    apps = {name: CREATE[name](settings) for name in ("identity", "cards", "bank")}
    async with (running_service(lambda _: apps["identity"], settings) as identity,
                running_service(lambda _: apps["cards"], settings) as cards,
                running_service(lambda _: apps["bank"], settings) as bank):
        clients = {"identity": identity, "cards": cards, "bank": bank}
        data = await one_person_with_a_card_and_a_replacement(identity, cards, bank, settings)
        values = {k: data[k] for k in ("person_id", "card_number", "receipt_number")}
        owner = token(settings, "cardholder", person_id=data["person_id"])

        wrong: list[str] = []
        for name, client in clients.items():
            scoped = person_scoped(name, values)
            wrong += await refusals(name, client, apps[name], settings, scoped, values, placeholder=False)
            for op, guard in scoped:  # the data is real: its owner reads it
                if op[0] == "GET" and guard.owner and not op[1].endswith("/balance"):
                    response = await call(client, apps[name], op, values, owner)
                    if response.status_code != 200:
                        wrong.append(describe(name, op, "owner", response))

        # Another cardholder cannot tell someone else's card or receipt from a number nobody has.
        other = token(settings, "cardholder", person_id=SOMEONE_ELSE)
        for name, client in clients.items():
            for op, guard in person_scoped(name, values):
                if guard.owner and RESOLVED_FIRST.search(op[1]):
                    real = await call(client, apps[name], op, values, other)
                    unknown = await call(client, apps[name], op, PLACEHOLDERS, other)
                    if answer_shape(real, values) != answer_shape(unknown, PLACEHOLDERS):
                        wrong.append(describe(name, op, "concealment", real) + f" but unknown: {unknown.text[:160]}")

        foreign_terminal = await bank.post("/v1/pos/authorisations", headers=token(settings, "merchant", sub="M-OTHER"),
                                           json={"transaction_id": "T-1", "card_number": data["card_number"],
                                                 "pin": "246810",
                                                 "merchant_id": "M-PH-0001", "amount_fen": 100})
        unknown_terminal = await bank.get(f"/v1/cards/{data['card_number']}/balance",
                                          headers=token(settings, "merchant", sub="M-NOT-REGISTERED"))
        teller, clerk = auth(settings, "teller"), auth(settings, "clerk")
        account = (await bank.get(f"/v1/accounts/{data['person_id']}", headers=teller)).json()
        card = (await cards.get(f"/v1/cards/{data['card_number']}", headers=clerk)).json()
        query, voucher = "/v1/loss-reports/query", data["voucher"]
        no_id = await cards.post(query, json={"voucher": voucher})
        other_id = await cards.post(query, json={"voucher": voucher, "id_number": id_number(472)})
        right_id = await cards.post(query, json={"voucher": voucher, "id_number": data["id_number"]})

    assert wrong == [], "\n".join(wrong)
    assert foreign_terminal.status_code == 403, foreign_terminal.text
    assert unknown_terminal.status_code == 403, unknown_terminal.text
    assert account["password_set"] is False, "a refused password command set the password"
    # The same check in the card view of issue 17: the state word and where the replacement stands.
    assert (card["state"], card["replacement_status"]) == ("lost", "requested"), "a refused command changed the card"
    assert (no_id.status_code, other_id.status_code, right_id.status_code) == (422, 404, 200)
