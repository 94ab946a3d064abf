"""What probing from outside found and what now holds, against the real servers: numbers in
other scripts' digits, amounts that are not JSON integers, control characters in names and
correlation ids, answers without security headers, metrics open to anyone."""

from __future__ import annotations

import uuid

import pytest

from services.bank.app import create as create_bank
from services.identity.app import create as create_identity
from shared.settings import Settings
from tests.helpers import auth, running_service

from .cards_support import id_number, identity_settings, register_person

pytestmark = pytest.mark.infra
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


async def test_a_fullwidth_copy_of_an_id_number_a_text_amount_and_a_name_with_nul_are_refused(
    settings: Settings,
) -> None:
    clerk = auth(settings, "clerk")
    number = id_number(731)
    async with running_service(lambda _: create_identity(identity_settings(settings)), settings) as identity:
        person_id = await register_person(identity, clerk, number=number)
        unit = (await identity.post("/v1/units", json={"name": "Hongxing"}, headers=clerk)).json()["unit_id"]
        person = {"name": "Wang Fang", "mobile": "13800138000", "household_number": "H1", "unit_id": unit}
        fullwidth = await identity.post("/v1/persons", headers=clerk,
                                        json={**person, "id_number": number.translate(FULLWIDTH)})
        nul = await identity.post("/v1/persons", headers=clerk,
                                  json={**person, "name": "Wang\x00Fang", "id_number": id_number(732)})
        escape = await identity.post("/v1/units", headers=clerk, json={"name": "Hong\x1b]0;owned\x07xing"})
        amounts = [await identity.post("/v1/contributions", headers=clerk, json={
            "unit_id": unit, "month": "2026-01", "items": [{"person_id": person_id, "amount_fen": amount}]})
            for amount in ("12850", True, 12850.0)]
        month = await identity.post("/v1/contributions", headers=clerk, json={
            "unit_id": unit, "month": "２０２６-01", "items": [{"person_id": person_id, "amount_fen": 12850}]})
    assert fullwidth.status_code == 422 and "17 digits" in fullwidth.json()["detail"], fullwidth.text
    assert nul.status_code == 422 and "control or format characters" in nul.json()["detail"]
    assert escape.status_code == 422 and "body.name" in escape.json()["detail"]
    assert [a.status_code for a in amounts] == [422, 422, 422]
    assert all("body.items[0].amount_fen: Input should be a valid integer" in a.json()["detail"] for a in amounts)
    assert month.status_code == 422


async def test_correlation_ids_are_checked_and_every_answer_carries_the_security_headers(
    settings: Settings,
) -> None:
    async with running_service(create_bank, settings) as bank:
        escape = await bank.get("/health", headers={"x-correlation-id": "trace\x1b[31mred"})
        long = await bank.get("/health", headers={"x-correlation-id": "t" * 129})
        good = await bank.get("/health", headers={"x-correlation-id": "trace-77.a:b_c"})
        answers = {
            "ok": good,
            "unauthorised": await bank.get("/v1/accounts/P1"),
            "not found": await bank.get("/v1/accounts/P-none", headers=auth(settings, "teller")),
            "invalid": await bank.post("/v1/merchants", json={}, headers=auth(settings, "operator")),
            "bad header": escape,
        }
    for refused in (escape, long):
        assert refused.status_code == 400, refused.text
        assert refused.json() == {"error": "bad_request", "detail": "header x-correlation-id: at most 128 "
                                  "characters: letters, digits and . _ : -"}
        uuid.UUID(refused.headers["x-correlation-id"])  # a fresh one, not the one sent
    assert good.status_code == 200 and good.headers["x-correlation-id"] == "trace-77.a:b_c"
    for name, answer in answers.items():
        headers = answer.headers
        assert (headers.get("x-content-type-options"), headers.get("cache-control")) == ("nosniff", "no-store"), name
        assert (headers.get("x-frame-options"), headers.get("referrer-policy")) == ("DENY", "no-referrer"), name


async def test_metrics_are_served_to_operators_only(settings: Settings) -> None:
    async with running_service(create_bank, settings) as bank:
        anonymous = await bank.get("/metrics")
        statuses = {role: (await bank.get("/metrics", headers=auth(settings, role))).status_code  # type: ignore[arg-type]
                    for role in ("cardholder", "merchant", "clerk", "teller")}
        operator = await bank.get("/metrics", headers=auth(settings, "operator"))
    assert anonymous.status_code == 401 and "medcard_" not in anonymous.text
    assert statuses == {"cardholder": 403, "merchant": 403, "clerk": 403, "teller": 403}
    assert operator.status_code == 200 and "medcard_http_requests_total" in operator.text
