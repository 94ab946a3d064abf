"""The console's API over real HTTP against the real broker: operators only, a live
server-sent event stream with filters, the card story, lag and dead letters."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date

import httpx
import pytest

from medcard.console.app import create
from shared.auth import Role, issue_token
from shared.consumer import ConsumerRunner
from shared.events import CardIssued, CardLost, CloudEvent
from shared.settings import Settings
from shared.topics import TOPICS, topic_for_service
from tests.helpers import eventually
from tests.integration.ops_support import event, free_port, publish, serving

pytestmark = pytest.mark.infra


def bearer(settings: Settings, role: Role = "operator") -> dict[str, str]:
    token = issue_token(settings, sub=f"u-{role}", role=role, person_id="P1" if role == "cardholder" else None)
    return {"Authorization": f"Bearer {token}"}


async def sse_events(resp: httpx.Response) -> AsyncIterator[tuple[str, dict[str, object]]]:
    """(event name, data) of each server-sent event, as they arrive."""
    name, data = "message", ""
    async for line in resp.aiter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data += line[6:]
        elif line == "" and data:
            yield name, json.loads(data)
            name, data = "message", ""


async def test_every_console_api_answers_401_without_a_token_and_403_to_other_roles(settings: Settings) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    with serving(lambda: create(settings, urls={"identity": nobody})) as url:
        async with httpx.AsyncClient(base_url=url, timeout=20) as http:
            page = await http.get("/")
            assert page.status_code == 200 and "operators' console" in page.text
            assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
            for path in ("/api/session", "/api/lag", "/api/dlq", "/api/cards/6216610000000000001/story",
                         "/api/stream"):
                assert (await http.get(path)).status_code == 401, path
                assert (await http.get(path, headers=bearer(settings, "cardholder"))).status_code == 403, path
                assert (await http.get(path, params={"token": "not-a-token"})).status_code == 401, path
            refused = await http.post("/api/login", json={"token": issue_token(settings, sub="t1", role="teller")})
            assert refused.status_code == 403 and "needs operator" in refused.json()["detail"]
            assert "set-cookie" not in refused.headers
            no_identity = await http.post("/api/login", json={"username": "ops", "password": "secret-pass"})
            assert no_identity.status_code == 503 and "paste a token instead" in no_identity.json()["detail"]

            # A login with an operator token opens a cookie session that every API accepts.
            opened = await http.post("/api/login", json={"token": issue_token(settings, sub="ops-1", role="operator")})
            assert opened.status_code == 200 and opened.json() == {"sub": "ops-1", "role": "operator"}
            assert "httponly" in opened.headers["set-cookie"].lower()
            assert (await http.get("/api/session")).json()["sub"] == "ops-1"
            lag = (await http.get("/api/lag")).json()
            assert [g["service"] for g in lag] == ["identity", "cards", "bank", "notifications"]
            assert (await http.get("/api/dlq")).json() == []
            assert (await http.post("/api/logout")).status_code == 204
            assert (await http.get("/api/session")).status_code == 401


async def test_the_stream_sends_matching_events_live_and_the_story_follows_the_card(settings: Settings) -> None:
    card, other = "6216610000000000701", "6216610000000000702"
    nobody = f"http://127.0.0.1:{free_port()}"
    urls = dict.fromkeys(("identity", "cards", "bank", "notifications"), nobody)
    with serving(lambda: create(settings, urls=urls)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=bearer(settings)) as http:
            bad = await http.get("/api/stream", params={"from": "last tuesday"})
            assert bad.status_code == 422 and "--from must be" in bad.json()["detail"]
            async with http.stream("GET", "/api/stream", params={"card": card, "type": "CardLost"}) as resp:
                assert resp.headers["content-type"].startswith("text/event-stream")
                events = sse_events(resp)
                assert (await anext(events))[0] == "ready"
                await publish(settings,
                              event(CardIssued(person_id="P7", card_number=card, agent_bank="BOC"), key="P7"),
                              event(CardLost(person_id="P8", card_number=other, channel="online", voucher="V8",
                                             business_date=date(2026, 3, 2)), key="P8"),
                              event(CardLost(person_id="P7", card_number=card, channel="online", voucher="V7",
                                             business_date=date(2026, 3, 2)), key="P7", sequence=2))
                name, first = await anext(events)
            assert name == "message" and (first["name"], first["subject"]) == ("CardLost", card)
            assert "voucher=V7" in str(first["summary"])

            story = (await http.get(f"/api/cards/{card}/story")).json()
            assert story["holder"] == "P7"
            assert [e["event"]["name"] for e in story["events"]] == ["CardIssued", "CardLost"]
            assert {s["service"]: s["status"] for s in story["states"]} == {
                "identity": "unreachable", "cards": "unreachable", "bank": "unreachable",
                "notifications": "unreachable"}


async def test_the_dead_letter_view_lists_shows_and_replays_once(settings: Settings) -> None:
    cards_topic, dlq_topic = topic_for_service("cards", settings.namespace), TOPICS["cards"].dlq(settings.namespace)
    card = "6216610000000000703"
    applied: list[str | None] = []
    cause = {"fixed": False}

    async def handler(ev: CloudEvent) -> None:  # a projection with a bug about one card
        if not cause["fixed"]:
            raise LookupError(f"card {ev.subject} has no account in this projection")
        applied.append(ev.subject)

    runner = ConsumerRunner(settings, service="bank", topics=[cards_topic], handler=handler)
    runner.start()
    nobody = f"http://127.0.0.1:{free_port()}"
    try:
        await publish(settings, event(CardLost(person_id="P9", card_number=card, channel="online", voucher="V9",
                                               business_date=date(2026, 3, 2)), key="P9", correlation="corr-dlq"))

        async def dead_lettered() -> bool:
            return runner.dead_lettered == 1
        await eventually(dead_lettered)
        with serving(lambda: create(settings, urls={"identity": nobody})) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30, headers=bearer(settings)) as http:
                [letter] = (await http.get("/api/dlq")).json()
                assert (letter["dlq_topic"], letter["topic"], letter["service"]) == (dlq_topic, cards_topic, "bank")
                assert letter["reason"] == f"LookupError: card {card} has no account in this projection"
                assert (await http.get("/api/dlq", params={"service": "identity"})).json() == []
                shown = (await http.get(f"/api/dlq/{dlq_topic}/{letter['ref']}")).json()
                assert shown["value"]["card_number"] == card
                assert shown["headers"]["ce_correlationid"] == "corr-dlq"
                missing = await http.get(f"/api/dlq/{dlq_topic}/0:999")
                assert missing.status_code == 404 and "no dead letter 0:999" in missing.json()["detail"]

                cause["fixed"] = True
                replayed = await http.post(f"/api/dlq/{dlq_topic}/replay", json={"refs": [letter["ref"]]})
                assert replayed.status_code == 200, replayed.text
                assert [r["ref"] for r in replayed.json()["replayed"]] == [letter["ref"]]

                async def applied_after_replay() -> bool:
                    return applied == [card]
                await eventually(applied_after_replay)
                again = (await http.post(f"/api/dlq/{dlq_topic}/replay", json={"refs": [letter["ref"]]})).json()
                assert again["replayed"] == [] and again["skipped"][letter["ref"]].startswith("already replayed at ")
                assert (await http.get("/api/dlq")).json()[0]["replayed"] is not None
    finally:
        await runner.stop()
