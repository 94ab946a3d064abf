"""Webhooks to a real local HTTP receiver, against the real Kafka broker and MongoDB-wire server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from services.notifications.signing import new_secret
from services.notifications.domain import stamp
from services.notifications.webhooks import SECRET_PURPOSE, event_key, structured
from shared.events import CloudEvent, MonthlyTransfer
from shared.security import SecretBox, UndecryptableSecret
from shared.settings import Settings
from tests.helpers import auth, eventually
from tests.integration.notifications_support import (
    CARD,
    LOCAL_RECEIVERS,
    WebhookReceiver,
    applied,
    event,
    produce,
    running_notifications,
    verify_standard_webhook,
)

pytestmark = pytest.mark.infra
WAIT = 90.0  # the shared MongoDB-wire server can stall for tens of seconds under other load


def transfer(n: int) -> CloudEvent:
    """The n-th monthly transfer of person P5 (one key: the bank publishes them in this order)."""
    return event(MonthlyTransfer(person_id="P5", account_id="A5", card_number=CARD, month=f"2026-{n:02d}",
                                 contribution_id=f"C{n}", amount_fen=10000, balance_after_fen=10000 * n), "P5", n)


async def deliveries(client: httpx.AsyncClient, settings: Settings, webhook_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=auth(settings, "operator"))
    assert response.status_code == 200, response.text
    return sorted(response.json()["data"], key=lambda d: d["seq"])


async def received(receiver: WebhookReceiver, n: int) -> None:
    async def check() -> bool:
        return len(receiver.received) >= n
    await eventually(check, timeout=WAIT)


async def test_a_receiver_gets_signed_cloudevents_and_after_being_down_everything_it_missed_in_order(
    settings: Settings,
) -> None:
    receiver = WebhookReceiver()
    await receiver.start()
    events = [transfer(n) for n in range(1, 5)]
    try:
        async with running_notifications(settings, webhook_allowed_networks=LOCAL_RECEIVERS) as (client, _):
            operator = auth(settings, "operator")
            created = await client.post("/v1/webhooks", json={"url": receiver.url, "event_types": ["MonthlyTransfer"]},
                                        headers=operator)
            assert created.status_code == 201, created.text
            hook = created.json()
            assert hook["event_types"] == ["cn.medcard.bank.MonthlyTransfer.v1"]
            # Up: the first event arrives, signed.
            await produce(settings, events[:1])
            await received(receiver, 1)
            first = receiver.received[0]
            # Down: the next three cannot be delivered; only the first of them is tried.
            await receiver.stop()
            await produce(settings, events[1:])

            async def head_retried() -> bool:
                log = await deliveries(client, settings, hook["webhook_id"])
                return len(log) == 4 and log[1]["attempts"] >= 2
            await eventually(head_retried, timeout=WAIT)
            while_down = await deliveries(client, settings, hook["webhook_id"])
            # Back up: everything it missed arrives, in order.
            await receiver.start()
            await received(receiver, 4)

            async def all_delivered() -> bool:
                return {d["status"] for d in await deliveries(client, settings, hook["webhook_id"])} == {"delivered"}
            await eventually(all_delivered, timeout=WAIT)
            after = await deliveries(client, settings, hook["webhook_id"])
            listed = await client.get("/v1/webhooks", headers=operator)
    finally:
        await receiver.stop()

    assert first.headers["content-type"].startswith("application/cloudevents+json")
    assert first.headers["webhook-id"] == events[0].id
    assert verify_standard_webhook(hook["secret"], first)
    assert not verify_standard_webhook("whsec_" + "A" * 32, first)
    body = first.json()
    assert (body["specversion"], body["id"]) == ("1.0", events[0].id)
    assert body["type"] == "cn.medcard.bank.MonthlyTransfer.v1"
    assert body["data"]["balance_after_fen"] == 10000 and body["subject"] == CARD

    assert [d["status"] for d in while_down] == ["delivered", "pending", "pending", "pending"]
    assert while_down[1]["last_status_code"] is None and "ConnectError" in while_down[1]["last_error"]
    assert [d["attempts"] for d in while_down[2:]] == [0, 0], "event n+1 was tried before n succeeded"

    assert [r.headers["webhook-id"] for r in receiver.received] == [e.id for e in events]
    assert all(verify_standard_webhook(hook["secret"], r) for r in receiver.received)
    assert [d["last_status_code"] for d in after] == [204] * 4
    assert after[1]["log"][-1]["status_code"] == 204 and after[1]["log"][0]["status_code"] is None
    assert "secret" not in listed.json()["data"][0]


async def test_an_operator_can_resend_replay_and_delete_a_subscription(settings: Settings) -> None:
    receiver = WebhookReceiver()
    await receiver.start()
    events = [transfer(n) for n in range(1, 4)]
    try:
        async with running_notifications(settings, webhook_allowed_networks=LOCAL_RECEIVERS) as (client, runtime):
            operator = auth(settings, "operator")
            hook = (await client.post("/v1/webhooks", json={"url": receiver.url, "event_types": ["MonthlyTransfer"]},
                                      headers=operator)).json()
            await produce(settings, events)
            await received(receiver, 3)
            first = (await deliveries(client, settings, hook["webhook_id"]))[0]
            # Resend the first delivery, then replay the last two events by their time range.
            resent = await client.post(f"/v1/webhooks/{hook['webhook_id']}/deliveries/{first['delivery_id']}/resend",
                                       headers=operator)
            await received(receiver, 4)
            since, until = events[1].time.isoformat(), (events[2].time + timedelta(microseconds=1)).isoformat()
            replay = await client.post(f"/v1/webhooks/{hook['webhook_id']}/replay",
                                       json={"since": since, "until": until}, headers=operator)
            await received(receiver, 6)
            empty = await client.post(f"/v1/webhooks/{hook['webhook_id']}/replay",
                                      json={"since": until, "until": since}, headers=operator)
            # Deleted: later events are not delivered any more.
            deleted = await client.delete(f"/v1/webhooks/{hook['webhook_id']}", headers=operator)
            before, later = applied(runtime), transfer(4)
            await produce(settings, [later])

            async def consumed() -> bool:
                return applied(runtime) > before
            await eventually(consumed, timeout=WAIT)
            gone = await client.get(f"/v1/webhooks/{hook['webhook_id']}", headers=operator)
            queued_later = await runtime.db["webhook_deliveries"].count_documents({"event_id": later.id})
    finally:
        await receiver.stop()
    assert resent.status_code == 202 and resent.json()["reason"] == "resend"
    assert resent.json()["resend_of"] == first["delivery_id"]
    assert replay.status_code == 202 and replay.json() == {"enqueued": 2}
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert ids == [events[0].id, events[1].id, events[2].id, events[0].id, events[1].id, events[2].id]
    assert empty.status_code == 422
    assert (deleted.status_code, gone.status_code, len(receiver.received), queued_later) == (204, 404, 6, 0)


async def test_the_event_log_is_keyed_by_time_and_events_kept_by_the_store_of_before_are_still_replayed(
    settings: Settings,
) -> None:
    """Events are kept under their time and id (the primary key: no other index to write);
    one kept by an earlier version (``received_events``, by id, with an index of time) is
    still found by a replay of its time and delivered, in time order with the new ones."""
    receiver = WebhookReceiver()
    await receiver.start()
    old, new = transfer(1), transfer(2)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:
        legacy = mongo[settings.database("notifications")]["received_events"]
        await legacy.create_index([("time", 1), ("received_at", 1)])
        await legacy.insert_one({"_id": old.id, "type": old.type, "time": stamp(old.time),
                                 "received_at": datetime.now(UTC), "envelope": structured(old)})
        async with running_notifications(settings, webhook_allowed_networks=LOCAL_RECEIVERS) as (client, runtime):
            operator = auth(settings, "operator")
            hook = (await client.post("/v1/webhooks", json={"url": receiver.url, "event_types": ["MonthlyTransfer"]},
                                      headers=operator)).json()
            await produce(settings, [new])
            await received(receiver, 1)
            since, until = old.time.isoformat(), (new.time + timedelta(microseconds=1)).isoformat()
            replay = await client.post(f"/v1/webhooks/{hook['webhook_id']}/replay",
                                       json={"since": since, "until": until}, headers=operator)
            await received(receiver, 3)
            short = await client.post(f"/v1/webhooks/{hook['webhook_id']}/replay",
                                      json={"since": since, "until": new.time.isoformat()}, headers=operator)
            await received(receiver, 4)
            kept = [d["_id"] async for d in runtime.db["event_log"].find({}, {"_id": 1})]
            indexes = await runtime.db["event_log"].index_information()
    finally:
        await receiver.stop()
        await mongo.close()
    assert (replay.json(), short.json()) == ({"enqueued": 2}, {"enqueued": 1})
    assert [r.headers["webhook-id"] for r in receiver.received] == [new.id, old.id, new.id, old.id]
    assert all(verify_standard_webhook(hook["secret"], r) for r in receiver.received)
    assert kept == [event_key(new)] and list(indexes) == ["_id_"]


async def test_subscriptions_are_for_operators_and_refuse_unknown_types_and_bad_secrets(settings: Settings) -> None:
    async with running_notifications(settings, webhook_allowed_networks=LOCAL_RECEIVERS) as (client, _):
        url = "http://127.0.0.1:9/hooks"
        operator = auth(settings, "operator")
        unknown = await client.post("/v1/webhooks", json={"url": url, "event_types": ["CardStolen"]},
                                    headers=operator)
        bad_secret = await client.post("/v1/webhooks", json={"url": url, "secret": "hunter2"}, headers=operator)
        not_http = await client.post("/v1/webhooks", json={"url": "ftp://example.org/x"}, headers=operator)
        clerk = await client.post("/v1/webhooks", json={"url": url}, headers=auth(settings, "clerk"))
        anonymous = await client.get("/v1/webhooks")
        missing = await client.get("/v1/webhooks/wh_nope/deliveries", headers=operator)
        listed = await client.get("/v1/webhooks", headers=operator)
    assert unknown.status_code == 422 and "CardStolen" in unknown.json()["detail"]
    assert (bad_secret.status_code, not_http.status_code) == (422, 422)
    assert "hunter2" not in bad_secret.text and "body.secret" in bad_secret.json()["detail"]
    assert (clerk.status_code, anonymous.status_code, missing.status_code) == (403, 401, 404)
    assert listed.json() == {"data": [], "count": 0}


async def test_signing_secrets_are_stored_sealed_and_clear_ones_from_before_are_sealed_at_start(
    settings: Settings,
) -> None:
    legacy_secret = new_secret()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    stored = mongo[settings.database("notifications")]["webhooks"]
    try:  # a subscription written in clear by an earlier version
        await stored.insert_one({"_id": "wh_legacy", "url": "http://127.0.0.1:9/legacy", "event_types": [],
                                 "secret": legacy_secret, "active": True, "created_at": datetime.now(UTC),
                                 "next_seq": 0})
        async with running_notifications(settings, webhook_allowed_networks=LOCAL_RECEIVERS) as (client, _):
            given = new_secret()
            created = await client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hooks", "secret": given},
                                        headers=auth(settings, "operator"))
            assert created.status_code == 201, created.text
            webhook_id = created.json()["webhook_id"]
            docs = {d["_id"]: d for d in await stored.find({}).to_list()}
    finally:
        await mongo.close()

    box = SecretBox(settings.webhook_secret_key, SECRET_PURPOSE)
    other_key = SecretBox("another-key-entirely-0123456789-abcdef", SECRET_PURPOSE)
    for hook_id, secret in ((webhook_id, given), ("wh_legacy", legacy_secret)):
        doc = docs[hook_id]
        dump = repr(doc)
        assert "secret" not in doc
        assert secret not in dump and secret.removeprefix("whsec_") not in dump
        assert box.open(doc["secret_sealed"], bound_to=hook_id) == secret
        with pytest.raises(UndecryptableSecret):
            other_key.open(doc["secret_sealed"], bound_to=hook_id)
        with pytest.raises(UndecryptableSecret):  # sealed for one subscription, useless on another
            box.open(doc["secret_sealed"], bound_to="wh_other")
    assert created.json()["secret"] == given


INTERNAL_URLS = [
    "http://169.254.169.254/latest/meta-data/", "http://10.0.0.5/hooks", "http://localhost:8999/hooks",
    "http://[::1]:8999/hooks", "http://2130706433/", "http://0x7f.1/", "http://127.0.0.1:27027/",
    "http://user:pw@claims.example.org/hooks", "http://metadata.google.internal/computeMetadata/v1/",
]


async def test_webhooks_go_to_public_addresses_only_and_keep_only_status_codes_and_timings(
    settings: Settings,
) -> None:
    """Server-side request forgery: by default nothing internal is subscribed or reached, and
    where a receiver is reached (allowed here) nothing of its answer but the status is kept."""
    leaky = WebhookReceiver(answer=b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 27\r\n"
                                   b"Connection: close\r\n\r\nredis_version:7.2 secret=42")
    await leaky.start()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    stored = mongo[settings.database("notifications")]
    try:
        async with running_notifications(settings) as (client, _):
            operator = auth(settings, "operator")
            refused = [await client.post("/v1/webhooks", json={"url": url}, headers=operator) for url in INTERNAL_URLS]
            # A subscription to this machine written before the check (or by hand) is not delivered.
            await stored["webhooks"].insert_one({
                "_id": "wh_inside", "url": leaky.url, "event_types": [], "active": True,
                "secret_sealed": SecretBox(settings.webhook_secret_key, SECRET_PURPOSE).seal(new_secret(),
                                                                                            bound_to="wh_inside"),
                "created_at": datetime.now(UTC), "next_seq": 0})
            await produce(settings, [transfer(1)])

            async def tried() -> bool:
                log = await deliveries(client, settings, "wh_inside")
                return bool(log) and log[0]["attempts"] >= 1
            await eventually(tried, timeout=WAIT)
            inside = (await deliveries(client, settings, "wh_inside"))[0]
            reached_while_refused = len(leaky.received)
        # Allowed (as in development), the receiver is reached; its answer's text is not kept.
        async with running_notifications(settings, webhook_allowed_networks=LOCAL_RECEIVERS) as (client, _):
            await eventually(lambda: _answered(client, settings), timeout=WAIT)
            answered = (await deliveries(client, settings, "wh_inside"))[0]
            listed = (await client.get("/v1/webhooks/wh_inside/deliveries", headers=auth(settings, "operator"))).text
        kept = repr(await stored["webhook_deliveries"].find({}).to_list())
    finally:
        await mongo.close()
        await leaky.stop()

    assert [r.status_code for r in refused] == [422] * len(INTERNAL_URLS), [r.text for r in refused]
    assert all("body.url" in r.json()["detail"] for r in refused)
    assert reached_while_refused == 0
    assert inside["status"] == "pending" and inside["last_status_code"] is None
    assert inside["last_error"].startswith("refused: 127.0.0.1 is a loopback address")
    assert answered["last_status_code"] == 500 and answered["last_error"] == "HTTP 500"
    assert {entry["error"] for entry in answered["log"]} >= {"HTTP 500"}
    assert all(entry["duration_ms"] >= 0 for entry in answered["log"])
    assert "redis_version" not in listed and "redis_version" not in kept


async def _answered(client: httpx.AsyncClient, settings: Settings) -> bool:
    return any(d["last_status_code"] == 500 for d in await deliveries(client, settings, "wh_inside"))


async def test_answer_texts_kept_by_an_earlier_version_are_cut_to_the_status_code_at_start(
    settings: Settings,
) -> None:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    deliveries_ = mongo[settings.database("notifications")]["webhook_deliveries"]
    now = datetime.now(UTC)
    try:
        await deliveries_.insert_one({
            "_id": "D-legacy", "webhook_id": "wh_gone", "event_id": "e1", "event_type": "t", "seq": 1,
            "reason": "event", "resend_of": None, "status": "cancelled", "attempts": 2, "created_at": now,
            "next_attempt_at": None, "last_status_code": 200, "last_error": "HTTP 401: {\"token\": \"abc\"}",
            "delivered_at": None, "log": [
                {"at": now, "status_code": 401, "error": "HTTP 401: {\"token\": \"abc\"}", "duration_ms": 3},
                {"at": now, "status_code": None, "error": "ConnectError: refused", "duration_ms": 1}]})
        async with running_notifications(settings):
            doc = await deliveries_.find_one({"_id": "D-legacy"})
    finally:
        await mongo.close()
    assert doc is not None and doc["last_error"] == "HTTP 401"
    assert [e["error"] for e in doc["log"]] == ["HTTP 401", "ConnectError: refused"]
