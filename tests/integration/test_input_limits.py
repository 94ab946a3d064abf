"""Input limits of every service, in process and over a real TCP socket (uvicorn): an
oversized body (announced by Content-Length or streamed chunked), malformed or absurdly
nested JSON, a body that is not JSON, a huge or senseless page size, and a validation
error answer that would echo a password, a PIN or an ID number. Each is a clear 4xx with
the shared error body, and none of them changes anything."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import date
from typing import Any

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from services.bank.app import create as create_bank
from services.cards.app import create as create_cards
from services.identity.app import create as create_identity
from services.notifications.app import create as create_notifications
from shared.ids import make_id_number
from shared.settings import Settings
from shared.topics import partitions_of, topic_for_service
from tests.helpers import auth, running_service

pytestmark = pytest.mark.infra

CREATE: dict[str, Callable[[Settings], FastAPI]] = {
    "identity": create_identity, "cards": create_cards, "bank": create_bank, "notifications": create_notifications,
}
PORTS = {"identity": 8311, "cards": 8312, "bank": 8313, "notifications": 8314}
COMMANDS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "identity": ("clerk", "/v1/units", {"name": "Hongxing Machinery"}),
    "cards": ("teller", "/v1/loss-reports/bank", {"card_number": "6216610000000000018",
                                                  "id_number": "11010519491231002X", "letter_reference": "L-1"}),
    "bank": ("operator", "/v1/merchants", {"merchant_id": "M-1", "name": "Tongren", "kind": "pharmacy",
                                           "designated": True}),
    "notifications": ("operator", "/v1/webhooks", {"url": "http://127.0.0.1:9/hooks"}),
}
"""One state-changing operation with a JSON body per service, with a valid body."""


@contextlib.asynccontextmanager
async def over_tcp(app: FastAPI, port: int) -> AsyncIterator[httpx.AsyncClient]:
    """The (already started) app behind a real uvicorn server on 127.0.0.1:port."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), f"uvicorn did not start on port {port}"
        await asyncio.sleep(0.05)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield client
    finally:
        server.should_exit = True
        await task


async def stored(settings: Settings, service: str) -> dict[str, int]:
    """Documents per collection of the service's database."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:
        db = client[settings.database(service)]
        return {name: await db[name].count_documents({}) for name in sorted(await db.list_collection_names())}
    finally:
        await client.close()


async def published(settings: Settings, service: str) -> int:
    """Records ever written to the service's topic."""
    topic = topic_for_service(service, settings.namespace)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(partitions_of(topic, settings.namespace))]
        return sum((await consumer.end_offsets(parts)).values())
    finally:
        await consumer.stop()


async def chunks(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def padded(body: dict[str, Any], length: int) -> bytes:
    """Valid JSON of exactly ``length`` bytes: the body followed by spaces."""
    raw = json.dumps(body).encode()
    assert len(raw) <= length
    return raw + b" " * (length - len(raw))


async def bad_requests(client: httpx.AsyncClient, path: str, headers: dict[str, str], body: dict[str, Any],
                       limit: int) -> dict[str, httpx.Response]:
    """Every malformed way of sending the command, and the answers."""
    js = {**headers, "content-type": "application/json"}
    over = padded(body, limit + 1)
    return {
        "over the limit, content-length": await client.post(path, content=over, headers=js),
        "over the limit, chunked": await client.post(path, content=chunks(over), headers=js),
        "far over the limit, chunked": await client.post(path, content=chunks(b" " * (limit * 4)), headers=js),
        "malformed json": await client.post(path, content=b'{"name": "x",', headers=js),
        "nested 20000 deep": await client.post(path, content=b"[" * 20_000 + b"]" * 20_000, headers=js),
        "json as text/plain": await client.post(path, content=json.dumps(body).encode(),
                                                headers={**headers, "content-type": "text/plain"}),
        "form encoded": await client.post(path, data={"name": "x"}, headers=headers),
        "no content type": await client.post(path, content=json.dumps(body).encode(), headers=headers),
        "a json array": await client.post(path, json=[body], headers=headers),
    }


EXPECTED = {
    "over the limit, content-length": (413, "payload_too_large"),
    "over the limit, chunked": (413, "payload_too_large"),
    "far over the limit, chunked": (413, "payload_too_large"),
    "malformed json": (400, "malformed_json"),
    "nested 20000 deep": (400, "bad_request"),
    "json as text/plain": (415, "unsupported_media_type"),
    "form encoded": (415, "unsupported_media_type"),
    "no content type": (415, "unsupported_media_type"),
    "a json array": (422, "invalid"),
}


@pytest.mark.parametrize("service", sorted(CREATE))
async def test_oversized_malformed_and_non_json_bodies_are_refused_and_change_nothing(
    service: str, settings: Settings,
) -> None:
    app = CREATE[service](settings)
    role, path, body = COMMANDS[service]
    headers = auth(settings, role)  # type: ignore[arg-type]
    async with running_service(lambda _: app, settings) as client:
        before = await stored(settings, service)
        in_process = await bad_requests(client, path, headers, body, settings.max_body_bytes)
        async with over_tcp(app, PORTS[service]) as tcp:
            over_the_wire = await bad_requests(tcp, path, headers, body, settings.max_body_bytes)
        after = await stored(settings, service)
        events = await published(settings, service)

    wrong = []
    for way, answers in (("in process", in_process), ("over tcp", over_the_wire)):
        for case, response in answers.items():
            status, code = EXPECTED[case]
            if response.status_code != status or response.json().get("error") != code \
                    or not response.json().get("detail"):
                wrong.append(f"{way}, {case}: {response.status_code} {response.text[:200]}")
    assert wrong == [], "\n".join(wrong)
    assert over_the_wire["malformed json"].json()["detail"].startswith("the request body is not valid JSON")
    assert after == before and events == 0


async def test_a_body_of_exactly_the_limit_is_accepted_chunked_or_not_and_one_byte_more_is_not(
    settings: Settings,
) -> None:
    limit = settings.max_body_bytes
    app = create_identity(settings)
    clerk = {**auth(settings, "clerk"), "content-type": "application/json"}
    async with running_service(lambda _: app, settings) as client, over_tcp(app, PORTS["identity"]) as tcp:
        at_limit = await tcp.post("/v1/units", content=padded({"name": "At the limit"}, limit), headers=clerk)
        at_limit_chunked = await tcp.post("/v1/units", content=chunks(padded({"name": "Chunked"}, limit)),
                                          headers=clerk)
        one_more = await tcp.post("/v1/units", content=chunks(padded({"name": "Over"}, limit + 1)), headers=clerk)
        in_process = await client.post("/v1/units", content=chunks(padded({"name": "In process"}, limit)),
                                       headers=clerk)
        units = await stored(settings, "identity")
    assert (at_limit.status_code, at_limit_chunked.status_code, in_process.status_code) == (201, 201, 201)
    assert one_more.status_code == 413
    assert units["units"] == 3


async def test_page_sizes_are_bounded_and_nonsense_is_refused_precisely(settings: Settings) -> None:
    operator = auth(settings, "operator")
    async with running_service(create_notifications, settings) as client:
        answers = {limit: await client.get("/v1/messages", params={"limit": limit}, headers=operator)
                   for limit in ("501", "1000000", str(10**30), "0", "-1", "abc", "1e3", "")}
        fine = await client.get("/v1/messages", params={"limit": "500"}, headers=operator)
        outbox = await client.get("/v1/sms-gateway/outbox", params={"limit": "100000"}, headers=operator)
        deliveries = await client.get("/v1/webhooks/wh_x/deliveries", params={"limit": "100000"}, headers=operator)
    assert fine.status_code == 200
    for limit, response in {**answers, "outbox": outbox, "deliveries": deliveries}.items():
        assert response.status_code == 422, (limit, response.text)
        assert response.json()["error"] == "invalid" and response.json()["detail"].startswith("query.limit: ")
    assert answers["501"].json()["detail"] == "query.limit: Input should be less than or equal to 500"
    assert answers["0"].json()["detail"] == "query.limit: Input should be greater than or equal to 1"


async def test_validation_errors_name_the_field_and_the_rule_but_never_echo_what_was_sent(
    settings: Settings,
) -> None:
    secret_password, bad_pin = "correct-horse-battery-staple-" + "x" * 120, "12ab56"
    id_number = make_id_number("110105", date(1980, 5, 17), 42)
    wrong_check = id_number[:-1] + ("0" if id_number[-1] != "0" else "1")
    async with running_service(create_identity, settings) as identity, running_service(create_bank, settings) as bank:
        login = await identity.post("/v1/login", json={"account_number": "someone", "password": secret_password})
        account = await identity.post("/v1/accounts", json={"name": "Wang", "id_number": id_number,
                                                            "account_number": "x", "password": "short"})
        pos = await bank.post("/v1/pos/authorisations", headers=auth(settings, "operator"), json={
            "transaction_id": "T-1", "card_number": "6216610000000000018", "pin": bad_pin, "merchant_id": "M-1", "amount_fen": 10**12})
        reset = await bank.post("/v1/cards/6216610000000000018/password/reset", headers=auth(settings, "teller"),
                                json={"id_number": wrong_check, "new_pin": "1234567"})
        missing = await bank.post("/v1/pos/authorisations", headers=auth(settings, "operator"), json={})
    assert login.status_code == 422
    assert login.json() == {"error": "invalid",
                            "detail": "body.password: String should have at most 128 characters"}
    assert account.status_code == 422 and "short" not in account.text and id_number not in account.text
    assert "body.account_number: String should match pattern" in account.json()["detail"]
    assert "body.password: String should have at least 8 characters" in account.json()["detail"]
    assert pos.status_code == 422 and bad_pin not in pos.text and str(10**12) not in pos.text
    assert "body.pin: String should match pattern" in pos.json()["detail"]
    assert "body.amount_fen: Input should be less than or equal to 100000000" in pos.json()["detail"]
    assert reset.status_code == 422 and wrong_check not in reset.text and "1234567" not in reset.text
    assert "body.id_number: Value error, resident ID number check digit" in reset.json()["detail"]
    assert missing.json()["detail"].startswith("body.card_number: Field required; body.pin: Field required")
    for response in (login, account, pos, reset, missing):
        assert set(response.json()) == {"error", "detail"}


async def test_numbers_dates_and_texts_at_the_edges_are_refused_before_they_reach_the_database(
    settings: Settings,
) -> None:
    """Found by probing past what the fuzzer reaches (they need a real unit and person):
    an amount beyond MongoDB's 8-byte integers, and a clock date past the calendar's end,
    were 500s; a name of spaces was stored empty."""
    clerk, operator = auth(settings, "clerk"), auth(settings, "operator")
    async with running_service(create_identity, settings) as client:
        number = make_id_number("110105", date(1981, 3, 9), 17)
        unit = (await client.post("/v1/units", json={"name": "Hongxing"}, headers=clerk)).json()["unit_id"]
        person = await client.post("/v1/persons", headers=clerk, json={
            "name": "Li Lei", "id_number": number, "mobile": "13800138000", "household_number": "H1",
            "unit_id": unit})
        assert person.status_code == 201, person.text
        before = await stored(settings, "identity")
        items = [{"person_id": person.json()["person_id"], "amount_fen": 10**20}]
        huge = await client.post("/v1/contributions", json={"unit_id": unit, "month": "2026-01", "items": items},
                                 headers=clerk)
        infinite = await client.post("/v1/contributions", content=(
            '{"unit_id": "' + unit + '", "month": "2026-01", "items": [{"person_id": "P", "amount_fen": 1e400}]}'),
            headers={**clerk, "content-type": "application/json"})
        past_the_end = await client.post("/v1/clock/advance", json={"start": "9999-12-25", "days": 10},
                                         headers=operator)
        blank = await client.post("/v1/units", json={"name": "   "}, headers=clerk)
        after = await stored(settings, "identity")
    assert huge.status_code == 422
    assert huge.json()["detail"] == "body.items[0].amount_fen: Input should be less than or equal to 100000000"
    assert infinite.status_code == 422 and "body.items[0].amount_fen" in infinite.json()["detail"]
    assert past_the_end.status_code == 422 and "stops at 9998-12-31" in past_the_end.json()["detail"]
    assert blank.status_code == 422 and blank.json()["detail"] == "body.name: Value error, must not be blank"
    assert after == before
