"""Messages to cardholders against the real Kafka broker and MongoDB-wire server."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from services.notifications.channels import SEND_CONCURRENCY, HttpSmsProvider, Sms, SmsGatewaySimulator
from services.notifications.compose import draft_for
from services.notifications.config import notification_settings
from services.notifications.delivery import HELD_MARGIN, SmsDispatcher
from services.notifications.domain import Message, create_message, stamp

from shared.codec import from_record
from shared.dbstats import DbCommandStats
from shared.events import (
    BusinessDateAdvanced,
    CardActivated,
    CardCancelled,
    CardIssued,
    CardLost,
    CardPasswordLocked,
    CardPasswordReset,
    FraudAlertRaised,
    MerchantRegistered,
    PurchaseAuthorised,
    PurchaseDeclined,
    new_event,
)
from shared.outbox import AggregateStore
from shared.service import ServiceRuntime
from shared.settings import Settings
from tests.helpers import auth, eventually, read_service_topic
from tests.integration.notifications_support import (
    CARD,
    WebhookReceiver,
    applied,
    event,
    person,
    produce,
    running_notifications,
)

pytestmark = pytest.mark.infra
WAIT = 90.0  # the shared MongoDB-wire server can stall for tens of seconds under other load


async def messages(client: httpx.AsyncClient, settings: Settings, person_id: str, **query: str) -> list[Any]:
    response = await client.get("/v1/messages", params={"person_id": person_id, **query},
                                headers=auth(settings, "operator"))
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def outbox(client: httpx.AsyncClient, settings: Settings, person_id: str) -> list[Any]:
    response = await client.get("/v1/sms-gateway/outbox", params={"person_id": person_id},
                                headers=auth(settings, "operator"))
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def handled(runtime: ServiceRuntime, n: int) -> None:
    async def check() -> bool:
        return applied(runtime) >= n
    await eventually(check, timeout=WAIT)


async def test_a_loss_report_yields_exactly_one_sms_with_the_voucher_even_when_delivered_twice(
    settings: Settings,
) -> None:
    lost = event(CardLost(person_id="P1", card_number=CARD, channel="online", voucher="GS202601050001",
                          business_date=date(2026, 1, 5)), "P1", sequence=2)
    async with running_notifications(settings) as (client, runtime):
        # The person is registered, holds a card, reports it lost; the loss event arrives twice.
        await produce(settings, [person("P1"), event(CardIssued(person_id="P1", card_number=CARD, agent_bank="BOC"),
                                                     "P1", sequence=1), lost, lost])
        await handled(runtime, 4)

        async def sent() -> bool:
            return [m["status"] for m in await messages(client, settings, "P1")] == ["sent"]
        await eventually(sent, timeout=WAIT)
        # ... and once more after the SMS went out.
        await produce(settings, [lost])
        await handled(runtime, 5)
        sms = await outbox(client, settings, "P1")
        own = await client.get("/v1/persons/P1/messages", headers=auth(settings, "cardholder", person_id="P1"))
        other = await client.get("/v1/persons/P2/messages", headers=auth(settings, "cardholder", person_id="P1"))
        anonymous = await client.get("/v1/persons/P1/messages")
        recipient = await client.get("/v1/recipients/P1", headers=auth(settings, "operator"))
    assert len(sms) == 1
    assert "挂失凭证号GS202601050001" in sms[0]["text"] and "尾号2345" in sms[0]["text"]
    assert CARD not in sms[0]["text"] and sms[0]["mobile"] == "138****8000"
    [message] = own.json()["data"]
    assert (message["template"], message["attempts"], message["card"]) == ("card_lost", 1, "****2345")
    assert message["text"] == sms[0]["text"] and message["cause_event_id"] == lost.id
    assert (other.status_code, anonymous.status_code) == (403, 401)
    # Issue 17: the recipient view said "active" for a lost card.
    assert recipient.json()["cards"] == [{"card_number": CARD, "state": "lost"}]
    assert recipient.json()["mobile"] == "138****8000"
    [record] = await read_service_topic(settings, "notifications", 1, timeout=WAIT)
    published = from_record(record)
    assert published.name == "NotificationSent" and published.subject == CARD
    assert published.data.message_id == message["message_id"]  # type: ignore[attr-defined]
    assert published.correlationid == lost.correlationid


async def test_a_failing_channel_is_retried_with_backoff_and_finally_marked_failed_visibly(
    settings: Settings,
) -> None:
    fraud = event(FraudAlertRaised(person_id="P7", card_number=CARD, authorisation_id="AU1", merchant_id="M1",
                                   amount_fen=30000, attempted_at=datetime(2026, 1, 5, 6, 30, tzinfo=UTC)), "P7")
    async with running_notifications(settings, sms_max_attempts=3) as (client, _):
        operator = auth(settings, "operator")
        drill = await client.post("/v1/sms-gateway/failures", json={"count": 3}, headers=operator)
        assert drill.json() == {"channel": "sms-simulator", "fail_next": 3}
        await produce(settings, [person("P7", language="en", name="Li Lei"), fraud])

        async def failed() -> bool:
            return len(await messages(client, settings, "P7", status="failed")) == 1
        await eventually(failed, timeout=WAIT)
        [message] = await messages(client, settings, "P7", status="failed")
        assert await outbox(client, settings, "P7") == []
        # The simulator works again: the next message goes through on its second attempt.
        await client.post("/v1/sms-gateway/failures", json={"count": 1}, headers=operator)
        await produce(settings, [event(CardPasswordLocked(person_id="P7", card_number=CARD, failures=3), "P7", 2)])

        async def locked_sent() -> bool:
            return len(await messages(client, settings, "P7", status="sent")) == 1
        await eventually(locked_sent, timeout=WAIT)
        [locked] = await messages(client, settings, "P7", status="sent")
        [sms] = await outbox(client, settings, "P7")
    assert (message["template"], message["attempts"], message["urgent"]) == ("fraud_alert", 3, True)
    assert "simulated gateway failure" in message["last_error"] and message["next_attempt_at"] is None
    assert (locked["template"], locked["attempts"], locked["language"]) == ("password_locked", 2, "en")
    assert sms["text"].startswith("[MedCard] Dear Li Lei, card ending 2345 is locked")
    records = await read_service_topic(settings, "notifications", 2, timeout=WAIT)
    outcomes = sorted((r.data.template, r.name) for r in map(from_record, records))  # type: ignore[attr-defined]
    assert outcomes == [("fraud_alert", "NotificationFailed"), ("password_locked", "NotificationSent")]


async def test_the_messages_are_indexed_by_status_only_where_a_read_needs_it(settings: Settings) -> None:
    """A started notifications service replaces the full status index of before by partial
    ones: the pending messages (the dispatcher's look), the waiting and the failed ones (an
    operator's lists); a sent message, most of them, has an entry in none."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:
        messages_ = client[settings.database("notifications")]["messages"]
        await messages_.create_index([("status", 1), ("next_attempt_at", 1)])
        async with running_notifications(settings):
            info = await messages_.index_information()
        partial = {name: spec["partialFilterExpression"] for name, spec in info.items()
                   if "status" in dict(spec["key"])}
        assert partial == {"due": {"status": "pending"}, "awaiting_contact": {"status": "awaiting_contact"},
                           "failed": {"status": "failed"}}
    finally:
        await client.close()


async def test_the_gateway_keeps_a_persons_sms_under_their_id_and_still_lists_those_kept_before(
    settings: Settings,
) -> None:
    """The simulator's records are keyed ``person/message`` (a person's SMS: a range of the
    primary key, no other index to write); one recorded by an earlier version (keyed by the
    message, with an index of person and time) is still listed, oldest first."""
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:
        db = mongo[settings.database("notifications")]
        await db["sms_outbox"].create_index([("person_id", 1), ("sent_at", 1)])
        await db["sms_outbox"].insert_one({"_id": "M-before", "person_id": "P3", "mobile": "13800000003",
                                           "text": "[MedCard] sent before", "urgent": False,
                                           "sent_at": datetime(2026, 1, 2, tzinfo=UTC), "business_date": None})
        async with running_notifications(settings) as (client, _):
            await produce(settings, [
                person("P3"), person("P30"),
                event(PurchaseAuthorised(person_id="P30", card_number=CARD, authorisation_id="AU30", merchant_id="M9",
                                         amount_fen=100, balance_after_fen=900, business_date=date(2026, 1, 5)), "P30"),
                event(PurchaseAuthorised(person_id="P3", card_number=CARD, authorisation_id="AU3", merchant_id="M9",
                                         amount_fen=2050, balance_after_fen=10295, business_date=date(2026, 1, 5)),
                      "P3"),
            ])

            async def both_listed() -> bool:
                return len(await outbox(client, settings, "P3")) == 2 and len(await outbox(client, settings, "P30")) == 1
            await eventually(both_listed, timeout=WAIT)
            listed = await outbox(client, settings, "P3")
        kept = await db["sms_sent"].find({"person_id": "P3"}).to_list()
        indexes = await db["sms_sent"].index_information()
    finally:
        await mongo.close()
    assert [s["message_id"] for s in listed] == ["M-before", kept[0]["message_id"]]
    assert [s["person_id"] for s in listed] == ["P3", "P3"] and "sent before" in listed[0]["text"]
    assert kept[0]["_id"] == f"P3/{kept[0]['message_id']}" and list(indexes) == ["_id_"]


async def test_a_purchase_message_names_the_merchant_from_the_banks_register(settings: Settings) -> None:
    async with running_notifications(settings) as (client, _):
        # The merchant is registered (and known to notifications) before anyone buys there:
        # its event and the purchase have different keys, so Kafka does not order them.
        await produce(settings, [
            person("P3"),
            event(MerchantRegistered(merchant_id="M9", name="同仁堂药店", kind="pharmacy", designated=True), "M9"),
        ])

        async def merchant_known() -> bool:
            drain = await client.get("/ops/drain", headers=auth(settings, "operator"))
            return bool(drain.json()["applied"] >= 2)
        await eventually(merchant_known, timeout=WAIT)
        await produce(settings, [
            event(PurchaseAuthorised(person_id="P3", card_number=CARD, authorisation_id="AU9", merchant_id="M9",
                                     amount_fen=2050, balance_after_fen=10295, business_date=date(2026, 1, 5)),
                  "P3"),
        ])

        async def delivered() -> bool:
            return len(await outbox(client, settings, "P3")) == 1
        await eventually(delivered, timeout=WAIT)
        [sms] = await outbox(client, settings, "P3")
        refused = await client.post("/v1/sms-gateway/failures", json={"count": 1},
                                    headers=auth(settings, "cardholder", person_id="P3"))
    assert "在同仁堂药店消费20.50元，余额102.95元" in sms["text"]
    assert refused.status_code == 403


async def test_a_real_provider_gets_each_sms_as_json_with_its_idempotency_key(settings: Settings) -> None:
    provider = WebhookReceiver()  # any HTTP endpoint will do: this one records what it is sent
    await provider.start()
    try:
        async with running_notifications(settings, sms_channel="http", sms_http_url=provider.url) as (client, _):
            await produce(settings, [person("P4", language="en", name="Han Meimei"),
                                     event(CardPasswordReset(person_id="P4", card_number=CARD), "P4")])

            async def posted() -> bool:
                return len(provider.received) == 1 and len(await messages(client, settings, "P4", status="sent")) == 1
            await eventually(posted, timeout=WAIT)
            drill = await client.post("/v1/sms-gateway/failures", json={"count": 1}, headers=auth(settings, "operator"))
    finally:
        await provider.stop()
    [request] = provider.received
    body = request.json()
    assert request.headers["idempotency-key"] == body["message_id"]
    assert (body["mobile"], body["urgent"]) == ("13800138000", False)
    assert body["text"].startswith("[MedCard] Dear Han Meimei, the password of card ending 2345 was reset")
    assert drill.status_code == 409 and "sms-http" in drill.json()["detail"]


class SlowProvider:
    """A real HTTP/1.1 server on 127.0.0.1 that keeps connections alive, takes 0.1 s over each
    SMS, counts the requests in flight at once and the connections opened, and refuses the
    message id ``refuse`` with a 503."""

    def __init__(self, refuse: str) -> None:
        self.refuse, self.in_flight, self.most, self.connections = refuse, 0, 0, 0
        self.closed_by_client = 0
        self.ids: list[str] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/sms"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ln)}
                await reader.readexactly(int(headers.get("content-length", "0")))
                self.in_flight += 1
                self.most = max(self.most, self.in_flight)
                await asyncio.sleep(0.1)
                self.in_flight -= 1
                self.ids.append(headers["idempotency-key"])
                status = b"503 Service Unavailable" if headers["idempotency-key"] == self.refuse else b"204 No Content"
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed_by_client += 1  # the client closed it: done
        finally:
            writer.close()


async def test_an_http_provider_gets_a_pass_a_few_at_a_time_on_kept_connections() -> None:
    """A pass of 20 SMS to a provider that takes 0.1 s each: ``SEND_CONCURRENCY`` in flight at
    once (not one after the other, not all at once), each outcome in its place, and the next
    pass reuses the connections (no new client, no new handshake, per SMS)."""
    provider = SlowProvider(refuse="M7")
    url = await provider.start()
    http = HttpSmsProvider(url, timeout=10.0)
    batch = [Sms(message_id=f"M{i}", person_id=f"P{i}", mobile="13800138000", text="hello", urgent=False)
             for i in range(20)]
    try:
        first = await http.send_many(batch)
        opened = provider.connections
        again = await http.send_many(batch[8:8 + SEND_CONCURRENCY])
    finally:
        await http.aclose()
        await provider.stop()
    assert [i for i, error in enumerate(first) if error is not None] == [7]
    assert "provider answered 503" in str(first[7])
    assert provider.most == SEND_CONCURRENCY
    assert sorted(provider.ids[:20]) == sorted(s.message_id for s in batch)
    assert opened == SEND_CONCURRENCY and provider.connections == opened  # kept alive across passes
    assert again == [None] * SEND_CONCURRENCY


async def test_an_operator_resends_a_failed_message_and_it_goes_out_once_the_channel_works(
    settings: Settings,
) -> None:
    locked = event(CardPasswordLocked(person_id="P8", card_number=CARD, failures=3), "P8")
    async with running_notifications(settings, sms_max_attempts=2) as (client, _):
        operator = auth(settings, "operator", sub="op-wang")
        # The gateway fails both attempts: the message fails for good.
        await client.post("/v1/sms-gateway/failures", json={"count": 2}, headers=operator)
        await produce(settings, [person("P8"), locked])

        async def failed() -> bool:
            return len(await messages(client, settings, "P8", status="failed")) == 1
        await eventually(failed, timeout=WAIT)
        [message] = await messages(client, settings, "P8")
        resend = f"/v1/messages/{message['message_id']}/resend"
        # Refused without changing anything: a cardholder, an unknown message, a malformed id.
        by_holder = await client.post(resend, headers=auth(settings, "cardholder", person_id="P8"))
        unknown = await client.post(f"/v1/messages/M{'0' * 32}/resend", headers=operator)
        malformed = await client.post("/v1/messages/not-a-message/resend", headers=operator)
        assert await messages(client, settings, "P8") == [message]
        # The gateway works again (its two failures are spent): the operator resends it.
        resent = await client.post(resend, headers=operator)

        async def sent() -> bool:
            return len(await messages(client, settings, "P8", status="sent")) == 1
        await eventually(sent, timeout=WAIT)
        [delivered] = await messages(client, settings, "P8")
        own = await client.get("/v1/persons/P8/messages", headers=auth(settings, "cardholder", person_id="P8"))
        again = await client.post(resend, headers=operator)
        unchanged = await messages(client, settings, "P8")
        sms = await outbox(client, settings, "P8")
    assert (by_holder.status_code, unknown.status_code, malformed.status_code) == (403, 404, 422)
    assert f"no message M{'0' * 32}" in unknown.json()["detail"]
    assert resent.status_code == 202, resent.text
    assert (resent.json()["status"], resent.json()["attempts"], resent.json()["last_error"]) == ("pending", 0, None)
    assert (message["attempts"], delivered["attempts"]) == (2, 1)
    history = [(c["status"], c["by"]) for c in delivered["history"]]
    assert history == [("failed", None), ("pending", "op-wang"), ("sent", None)]
    [mine] = own.json()["data"]  # the holder sees the resend, not which operator made it
    assert [(c["status"], c["by"]) for c in mine["history"]] == [("failed", None), ("pending", None), ("sent", None)]
    assert delivered["history"][1]["note"].startswith("resent after 2 failed attempts; last error: simulated gateway")
    assert again.status_code == 409 and "is sent: only a failed message can be resent" in again.json()["detail"]
    assert unchanged == [delivered]
    [one] = sms
    assert one["message_id"] == message["message_id"] and "已锁定" in one["text"]
    records = [from_record(r) for r in await read_service_topic(settings, "notifications", 2, timeout=WAIT)]
    assert [(r.name, r.data.message_id) for r in records] == [  # type: ignore[attr-defined]
        ("NotificationFailed", message["message_id"]), ("NotificationSent", message["message_id"])]


async def test_a_message_for_a_person_not_yet_known_waits_for_their_details_and_goes_out_once(
    settings: Settings,
) -> None:
    lost = event(CardLost(person_id="P9", card_number=CARD, channel="bank", voucher="V583920174625",
                          business_date=date(2026, 1, 5)), "P9", sequence=2)
    async with running_notifications(settings, sms_max_attempts=2) as (client, _):
        # Cards' event comes first: notifications has nobody to send it to yet.
        await produce(settings, [lost])

        async def waiting() -> bool:
            return len(await messages(client, settings, "P9", status="awaiting_contact")) == 1
        await eventually(waiting, timeout=WAIT)
        [before] = await messages(client, settings, "P9")
        # Identity's event arrives later, then both once more (redeliveries).
        await produce(settings, [person("P9")])

        async def sent() -> bool:
            return len(await messages(client, settings, "P9", status="sent")) == 1
        await eventually(sent, timeout=WAIT)
        await produce(settings, [person("P9"), lost,
                                 event(CardPasswordReset(person_id="P9", card_number=CARD), "P9", sequence=3)])

        async def marker_sent() -> bool:
            return len(await messages(client, settings, "P9", status="sent")) == 2
        await eventually(marker_sent, timeout=WAIT)
        after = await messages(client, settings, "P9")
        sms = await outbox(client, settings, "P9")
    assert (before["attempts"], before["next_attempt_at"], before["last_error"]) == (0, None, None)
    [card_lost] = [m for m in after if m["template"] == "card_lost"]
    assert sorted(m["template"] for m in after) == ["card_lost", "password_reset"]
    assert card_lost["message_id"] == before["message_id"] and card_lost["attempts"] == 1
    assert [c["status"] for c in card_lost["history"]] == ["awaiting_contact", "pending", "sent"]
    assert [s["message_id"] for s in sms].count(before["message_id"]) == 1 and len(sms) == 2
    assert "张三您好" in sms[0]["text"] and "在银行网点挂失，挂失凭证号V583920174625" in sms[0]["text"]


async def test_a_swipe_of_a_lost_card_sends_the_urgent_alert_only(settings: Settings) -> None:
    declined = PurchaseDeclined(person_id="P10", card_number=CARD, authorisation_id="AU7", merchant_id="M1",
                                amount_fen=30000, kind="purchase", reason_code="41", reason="lost card, pick up",
                                business_date=date(2026, 1, 5))
    alert = FraudAlertRaised(person_id="P10", card_number=CARD, authorisation_id="AU7", merchant_id="M1",
                             amount_fen=30000, attempted_at=datetime(2026, 1, 5, 6, 30, tzinfo=UTC))
    async with running_notifications(settings) as (client, runtime):
        # The bank publishes both events of the one decision, in this order.
        await produce(settings, [person("P10"), event(declined, "P10", sequence=1), event(alert, "P10", sequence=2)])
        await handled(runtime, 3)

        async def delivered() -> bool:  # the SMS handed to the gateway, and its message's status written after
            return (len(await outbox(client, settings, "P10")) == 1
                    and all(m["status"] != "pending" for m in await messages(client, settings, "P10")))
        await eventually(delivered, timeout=WAIT)
        listed = await messages(client, settings, "P10")
        [sms] = await outbox(client, settings, "P10")
    assert [(m["template"], m["urgent"], m["status"]) for m in listed] == [("fraud_alert", True, "sent")]
    assert sms["text"].startswith("【医保】紧急提醒：张三您好") and sms["urgent"]


async def test_the_recipient_view_follows_each_card_and_messages_tell_their_business_date(
    settings: Settings,
) -> None:
    """Issue 17: the recipient view said "active" for a lost card and for one awaiting its
    password; an SMS gave only its real sending time beside simulated business dates."""
    old, new = CARD, "6216610000000067890"
    clock = event(BusinessDateAdvanced(date=date(2026, 3, 2), previous_date=date(2026, 3, 1)), "clock")
    steps: list[tuple[Any, list[dict[str, str]]]] = [
        (CardIssued(person_id="P7", card_number=old, agent_bank="BOC"),
         [{"card_number": old, "state": "pending_activation"}]),
        (CardActivated(person_id="P7", card_number=old), [{"card_number": old, "state": "active"}]),
        (CardLost(person_id="P7", card_number=old, channel="bank", voucher="V7", business_date=date(2026, 2, 27),
                  letter_reference="HX-7"), [{"card_number": old, "state": "lost"}]),
        (CardCancelled(person_id="P7", card_number=old, reason="replaced", replaced_by=new),
         [{"card_number": old, "state": "cancelled"}]),
        (CardIssued(person_id="P7", card_number=new, agent_bank="BOC", replaces=old),
         [{"card_number": old, "state": "cancelled"}, {"card_number": new, "state": "pending_activation"}]),
    ]
    async with running_notifications(settings) as (client, runtime):
        await produce(settings, [person("P7"), clock])
        await handled(runtime, 2)
        for sequence, (data, expected) in enumerate(steps, start=1):
            await produce(settings, [event(data, "P7", sequence=sequence)])

            async def shown(expected: list[dict[str, str]] = expected) -> bool:
                answer = await client.get("/v1/recipients/P7", headers=auth(settings, "operator"))
                return answer.status_code == 200 and answer.json()["cards"] == expected
            await eventually(shown, timeout=WAIT)

        async def both_sent() -> bool:
            return [m["status"] for m in await messages(client, settings, "P7")] == ["sent", "sent"]
        await eventually(both_sent, timeout=WAIT)
        told = {m["template"]: m["business_date"] for m in await messages(client, settings, "P7")}
        sms = {m["message_id"]: m["business_date"] for m in await outbox(client, settings, "P7")}
    # The loss's own business date; the hand-over's is the business clock's when it was told.
    assert told == {"card_lost": "2026-02-27", "card_handed_out": "2026-03-02"}
    assert sorted(sms.values()) == ["2026-02-27", "2026-03-02"]


async def due_messages(db: Any, store: AggregateStore[Message], count: int, start: int = 0,
                       held_until: datetime | None = None) -> None:
    """``count`` persons with contact details, and a loss message due for each (M<start>...),
    or born leased until ``held_until``."""
    numbers = range(start, start + count)
    await db["recipients"].insert_many([{"_id": f"P{k}", "person_id": f"P{k}", "name": f"Li {k}",
                                         "mobile": f"1380000{k:04d}", "language": "zh"} for k in numbers])
    now = datetime.now(UTC)
    for k in numbers:
        data = CardLost(person_id=f"P{k}", card_number=CARD, channel="online", voucher=f"V{k}",
                        business_date=date(2026, 3, 2))
        cause = new_event(data, source="/medcard/cards", partitionkey=f"P{k}", sequence=1, correlationid=f"c{k}")
        draft = draft_for(data)
        assert draft is not None
        await store.execute(f"M{k}", create_message(draft, cause, now, held_until=held_until), correlation_id=f"c{k}")


async def test_two_dispatchers_racing_over_the_same_messages_send_each_once(settings: Settings) -> None:
    """Replicas of notifications share the messages: a pass claims its messages in one
    write, and a message another replica claimed first is left to it (each sent once)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:
        db = client[settings.database("notifications")]
        store = AggregateStore(db["messages"], service="notifications", state_type=Message)
        config = notification_settings(settings)
        dispatchers = [SmsDispatcher(config, messages=store, recipients=db["recipients"],
                                     channel=SmsGatewaySimulator(db["sms_outbox"])) for _ in range(2)]
        count = 120
        await due_messages(db, store, count)

        async def drain(dispatcher: SmsDispatcher) -> int:
            tried = 0
            while n := await dispatcher.dispatch_due():
                tried += n
            return tried

        tried = await asyncio.gather(*(drain(d) for d in dispatchers))
        assert sum(tried) == count, f"each message tried once in all, by one replica: {tried}"
        docs = await db["messages"].find({}).to_list()
        assert len(docs) == count and {d["status"] for d in docs} == {"sent"}
        assert all(d["attempts"] == 1 for d in docs)
        sent_events = [e for d in docs for e in d.get("outbox", []) if e["type"].endswith("NotificationSent.v1")]
        assert len(sent_events) == count, "one NotificationSent per message"
        assert await db["sms_outbox"].count_documents({}) == count
    finally:
        await client.close()


async def test_a_dispatch_pass_costs_the_same_few_database_commands_whatever_its_size(settings: Settings) -> None:
    """A pass of the channel's size (500 for the gateway simulator, of 600 due messages):
    read, claim, recipients, the gateway's record and the outcomes, one command each (not one
    or more per message); the next pass takes the rest. (The read is the pass's cost when a
    backlog has formed: DocumentDB sorts every due message for it, so a pass takes many.)"""
    stats = DbCommandStats()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url, event_listeners=[stats])
    try:
        db = client[settings.database("notifications")]
        store = AggregateStore(db["messages"], service="notifications", state_type=Message)
        dispatcher = SmsDispatcher(notification_settings(settings), messages=store, recipients=db["recipients"],
                                   channel=SmsGatewaySimulator(db["sms_outbox"]))
        size = SmsGatewaySimulator.pass_size
        count = size + 100
        await due_messages(db, store, count)
        stats.counts.clear()
        assert await dispatcher.dispatch_due() == size
        commands = {k: n for k, n in stats.counts.items() if k[1] in ("messages", "recipients", "sms_outbox")}
        assert sum(commands.values()) == 5, commands
        assert {(name, collection) for name, collection, _ in commands} == {
            ("find", "messages"), ("update", "messages"), ("find", "recipients"), ("insert", "sms_outbox")}
        assert await dispatcher.dispatch_due() == count - size
        docs = await db["messages"].find({}).to_list()
        assert {d["status"] for d in docs} == {"sent"} and all(d["attempts"] == 1 for d in docs)
        assert await db["sms_outbox"].count_documents({}) == count
        assert sum(1 for d in docs for e in d["outbox"] if e["type"].endswith("NotificationSent.v1")) == count
    finally:
        await client.close()


async def test_messages_born_leased_to_this_dispatcher_go_out_without_a_claim_and_no_other_replica_takes_them(
    settings: Settings,
) -> None:
    """The consumer creates each message leased to its own process's dispatcher: a pass told of
    them sends them without the claim's write (read, recipients, the gateway's record, the
    outcomes: four commands), while another replica's look finds none of them due. One whose
    lease is nearly over is claimed as any; one told of with a lease it was not born with
    (it was there already) is not due before its own lease ends."""
    stats = DbCommandStats()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url, event_listeners=[stats])
    try:
        db = client[settings.database("notifications")]
        store = AggregateStore(db["messages"], service="notifications", state_type=Message)

        def dispatcher() -> SmsDispatcher:
            return SmsDispatcher(notification_settings(settings), messages=store, recipients=db["recipients"],
                                 channel=SmsGatewaySimulator(db["sms_outbox"]))
        ours, other = dispatcher(), dispatcher()
        lease = SmsDispatcher.hold(datetime.now(UTC))
        await due_messages(db, store, 5, held_until=lease)
        assert await other.dispatch_due() == 0, "another replica takes no message born leased to this one"
        ids = [f"M{k}" for k in range(5)]
        ours.wake(ids=ids[:3], held_until=lease)
        stats.counts.clear()
        assert await ours.dispatch_due(ids[:3]) == 3
        commands = {k: n for k, n in stats.counts.items() if k[1] in ("messages", "recipients", "sms_outbox")}
        assert sum(commands.values()) == 4, commands
        assert {(name, collection) for name, collection, _ in commands} == {
            ("find", "messages"), ("update", "messages"), ("find", "recipients"), ("insert", "sms_outbox")}
        ours.wake(ids=["M3"], held_until=lease + timedelta(seconds=1))  # not the lease M3 was born with
        assert await ours.dispatch_due(["M3"]) == 0, "a message held by another lease is not due"
        soon = datetime.now(UTC) + HELD_MARGIN / 2
        await db["messages"].update_one({"_id": "M4"}, {"$set": {"next_attempt_at": stamp(soon)}})
        ours.wake(ids=["M4"], held_until=soon)
        stats.counts.clear()
        assert await ours.dispatch_due(["M4"]) == 1
        updates = sum(n for (name, collection, _), n in stats.counts.items() if (name, collection) == ("update", "messages"))
        assert updates == 2, "claimed (its lease nearly over), then sent"
        docs = {d["_id"]: d for d in await db["messages"].find({}).to_list()}
        assert {k: d["status"] for k, d in docs.items()} == {
            "M0": "sent", "M1": "sent", "M2": "sent", "M3": "pending", "M4": "sent"}
        assert all(d["attempts"] == 1 for k, d in docs.items() if k != "M3")
        assert await db["sms_outbox"].count_documents({}) == 4, "each message sent once"
    finally:
        await client.close()


async def test_a_pass_told_of_its_messages_takes_those_by_id_and_the_periodic_look_finds_the_rest(
    settings: Settings,
) -> None:
    """The consumer tells the dispatcher which messages it created: a pass reads those by id
    (the primary key), not every due message through the status index (which holds each dead
    version of a message until the next vacuum: 188,000 entries a read in the 100,000-person
    run). A message nobody told of (a crash, another replica) goes at the next full look,
    every ``sms_scan_seconds``, or when the dispatcher is woken without ids."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:
        db = client[settings.database("notifications")]
        store = AggregateStore(db["messages"], service="notifications", state_type=Message)
        config = notification_settings(settings).model_copy(update={"sms_scan_seconds": 300.0,
                                                                    "worker_poll_seconds": 0.05})
        dispatcher = SmsDispatcher(config, messages=store, recipients=db["recipients"],
                                   channel=SmsGatewaySimulator(db["sms_outbox"]))
        await due_messages(db, store, 6)
        assert await dispatcher.dispatch_due(["M1", "M4", "M9"]) == 2, "an unknown id is no message to send"
        assert await dispatcher.dispatch_due(["M1"]) == 0, "a message sent already is not due"

        async def statuses() -> dict[str, str]:
            return {d["_id"]: d["status"] for d in await db["messages"].find({}, {"status": 1}).to_list()}
        assert await statuses() == {"M0": "pending", "M1": "sent", "M2": "pending", "M3": "pending",
                                    "M4": "sent", "M5": "pending"}

        task = asyncio.create_task(dispatcher.run())
        try:
            async def sent(*ids: str) -> bool:
                found = await statuses()
                return all(found[i] == "sent" for i in ids)
            await eventually(lambda: sent("M0", "M1", "M2", "M3", "M4", "M5"), timeout=WAIT)  # the first look
            await due_messages(db, store, 3, start=6)
            dispatcher.wake(ids=["M7"])
            await eventually(lambda: sent("M7"), timeout=WAIT)
            await asyncio.sleep(0.5)  # several polls: none of them looks for every due message
            assert (await statuses())["M6"] == "pending", "a pass told of M7 also took M6"
            dispatcher.wake()  # without ids: look for every due message
            await eventually(lambda: sent("M6", "M8"), timeout=WAIT)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert await db["sms_outbox"].count_documents({}) == 9, "each message sent once"
    finally:
        await client.close()


async def test_a_failed_attempt_is_tried_again_when_its_backoff_ends_not_at_the_next_full_look(
    settings: Settings,
) -> None:
    """The dispatcher wakes for a failed message when its backoff ends: with the look for
    every due message five minutes apart, the retry still goes out at once."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:
        db = client[settings.database("notifications")]
        store = AggregateStore(db["messages"], service="notifications", state_type=Message)
        config = notification_settings(settings).model_copy(update={
            "sms_scan_seconds": 300.0, "worker_poll_seconds": 0.05, "sms_backoff_seconds": 0.2})
        dispatcher = SmsDispatcher(config, messages=store, recipients=db["recipients"],
                                   channel=SmsGatewaySimulator(db["sms_outbox"], fail_next=2))
        task = asyncio.create_task(dispatcher.run())
        try:
            await asyncio.sleep(0.2)  # the first look, before any message
            await due_messages(db, store, 1)
            dispatcher.wake(ids=["M0"])

            async def sent() -> bool:
                doc = await db["messages"].find_one({"_id": "M0"})
                return doc is not None and doc["status"] == "sent"
            await eventually(sent, timeout=WAIT)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        doc = await db["messages"].find_one({"_id": "M0"})
        assert doc is not None and doc["attempts"] == 3, "two failed attempts, then the one that went out"
    finally:
        await client.close()
