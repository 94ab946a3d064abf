"""The notifications' handlers on an in-memory database: an operator's commands (a failed
message resent, the gateway simulator told to fail, a webhook subscribed) and the consumed
events (a lost card projected and told, contact details releasing waiting messages, the
business date, the batch, every event kept for the webhooks)."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pymongo import InsertOne, UpdateMany, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.notifications import handlers
from services.notifications.channels import HttpSmsProvider, SmsChannel, SmsGatewaySimulator
from services.notifications.config import NotificationSettings
from services.notifications.delivery import SmsDispatcher
from services.notifications.deps import Notifications
from services.notifications.domain import (
    Message,
    NotFailed,
    UnknownEventTypes,
    await_contact,
    message_id,
    record_failure,
)
from services.notifications.schemas import WebhookCreate
from services.notifications.webhooks import WebhookHub, event_key
from shared.auth import Principal
from shared.clock import BusinessClock
from shared.domain import Conflict, NotFound
from shared.events import (
    BusinessDateAdvanced,
    CardLost,
    CardPasswordChanged,
    CardPasswordSet,
    CloudEvent,
    EventData,
    MerchantRegistered,
    PersonRegistered,
    PurchaseAuthorised,
    new_event,
)
from shared.outbox import AggregateStore
from tests.unit.memory_collection import Doc, MemoryCollection, MemoryCursor

CARD = "6216610000000012345"
OPERATOR = Principal(sub="op-wang", role="operator")


def _matches(doc: Doc, query: Doc) -> bool:
    """Equality (dotted paths too), ``$in``, ``$lt``, ``$exists`` and ``$or``: what the
    handlers' writes filter on."""
    for key, wanted in query.items():
        if key == "$or":
            if not any(_matches(doc, q) for q in wanted):
                return False
            continue
        value: Any = doc
        for part in key.split("."):
            value = value.get(part, _MISSING) if isinstance(value, dict) else _MISSING
        if isinstance(wanted, dict) and any(k.startswith("$") for k in wanted):
            for op, arg in wanted.items():
                if op == "$in" and value not in arg:
                    return False
                if op == "$lt" and (value is _MISSING or not value < arg):
                    return False
                if op == "$exists" and (value is not _MISSING) != arg:
                    return False
        elif value != wanted:
            return False
    return True


_MISSING = object()


class Result:
    def __init__(self, matched: int = 0, upserted_id: Any = None) -> None:
        self.matched_count = self.modified_count = matched
        self.upserted_id = upserted_id


class Collection(MemoryCollection):
    """``MemoryCollection`` with the writes the handlers make: inserts (a duplicate ``_id``
    refused), updates with ``$set`` (dotted paths), ``$push`` and ``$inc``, upserts, and
    bulk writes of them; on the filters ``_matches`` knows."""

    def __init__(self, name: str, database: Database) -> None:
        super().__init__(name)
        self.database = database

    def find(self, query: Doc, fields: Doc | None = None, batch_size: int = 0) -> MemoryCursor:
        cursor = super().find({})
        cursor.found = [copy.deepcopy(d) for d in self.docs.values() if _matches(d, query)]
        return cursor

    async def find_one(self, query: Doc, fields: Doc | None = None) -> Doc | None:
        await self.reading()
        return next((copy.deepcopy(d) for d in self.docs.values() if _matches(d, query)), None)

    async def insert_one(self, doc: Doc) -> None:
        await asyncio.sleep(0)
        if doc["_id"] in self.docs:
            raise DuplicateKeyError("duplicate key", 11000)
        self.docs[doc["_id"]] = copy.deepcopy(doc)

    async def insert_many(self, docs: list[Doc], ordered: bool = True) -> None:
        errors = []
        for i, doc in enumerate(docs):
            try:
                await self.insert_one(doc)
            except DuplicateKeyError:
                errors.append({"index": i, "code": 11000})
        if errors:
            raise BulkWriteError({"writeErrors": errors})

    async def update_one(self, query: Doc, update: Doc, upsert: bool = False) -> Result:
        await asyncio.sleep(0)
        return self._update(query, update, upsert)

    async def find_one_and_update(self, query: Doc, update: Doc, return_document: Any = None) -> Doc | None:
        self._update(query, update, upsert=False)
        return await self.find_one(query)

    async def bulk_write(self, requests: list[Any], ordered: bool = True) -> Any:  # type: ignore[override]
        await asyncio.sleep(0)
        result, errors = Result(), []
        for i, request in enumerate(requests):
            try:
                if isinstance(request, InsertOne):
                    await self.insert_one(request._doc)
                elif isinstance(request, UpdateOne | UpdateMany):
                    result.matched_count += self._update(dict(request._filter), dict(request._doc),  # type: ignore[arg-type]
                                                         bool(request._upsert)).matched_count
            except DuplicateKeyError:
                errors.append({"index": i, "code": 11000})
                if ordered:
                    break
        if errors:
            raise BulkWriteError({"writeErrors": errors})
        return result

    def _update(self, query: Doc, update: Doc, upsert: bool) -> Result:
        found = next((d for d in self.docs.values() if _matches(d, query)), None)
        upserted = None
        if found is None:
            if not upsert:
                return Result()
            if query["_id"] in self.docs:  # the filter missed an existing document
                raise DuplicateKeyError("duplicate key", 11000)
            found = self.docs[query["_id"]] = {"_id": query["_id"]}
            upserted = query["_id"]
        for path, value in update.get("$set", {}).items():
            *parents, last = path.split(".")
            target = found
            for part in parents:
                target = target.setdefault(part, {})
            target[last] = copy.deepcopy(value)
        for path, value in update.get("$push", {}).items():
            found.setdefault(path, []).extend(copy.deepcopy(value["$each"]))
        for path, value in update.get("$inc", {}).items():
            found[path] = found.get(path, 0) + value
        return Result(0 if upserted else 1, upserted)


class Database:
    def __init__(self) -> None:
        self.collections: dict[str, Collection] = {}

    def __getitem__(self, name: str) -> Collection:
        return self.collections.setdefault(name, Collection(name, self))


def context(channel: SmsChannel | None = None) -> tuple[Notifications, Database]:
    """The service's context on an in-memory database, as ``Notifications.wire`` builds it."""
    db = Database()
    settings = NotificationSettings(environment="test", webhook_secret_key="unit-webhooks", otp_key="unit-otp")
    messages = AggregateStore(db["messages"], service="notifications", state_type=Message)  # type: ignore[arg-type]
    channel = channel or SmsGatewaySimulator(db["sms_outbox"])  # type: ignore[arg-type]
    dispatcher = SmsDispatcher(settings, messages=messages, recipients=db["recipients"],  # type: ignore[arg-type]
                               channel=channel)
    ctx = Notifications(messages=messages, recipients=db["recipients"], merchants=db["merchants"],  # type: ignore[arg-type]
                        hub=WebhookHub(db, settings.webhook_secret_key), channel=channel,  # type: ignore[arg-type]
                        dispatcher=dispatcher, clock=BusinessClock(db))  # type: ignore[arg-type]
    return ctx, db


def event(data: EventData, key: str = "P1", sequence: int = 1) -> CloudEvent:
    return new_event(data, source=f"/medcard/{data.service}", partitionkey=key, sequence=sequence,
                     correlationid="corr-1", subject=getattr(data, "card_number", None) or key)


PERSON = event(PersonRegistered(person_id="P1", unit_id=None, name="张三", id_number_digest="0" * 64,
                                id_number_masked="110***********123X", mobile="13800138000"))
LOST = event(CardLost(person_id="P1", card_number=CARD, channel="online", voucher="V1",
                      business_date=date(2026, 3, 2)), sequence=2)
CHANGED = event(CardPasswordChanged(person_id="P1", card_number=CARD, channel="counter"), key=CARD)
DAY = event(BusinessDateAdvanced(date=date(2026, 3, 3), previous_date=date(2026, 3, 2)), key="clock")
SHOP = event(MerchantRegistered(merchant_id="M001", name="仁和药房", kind="pharmacy", designated=True), key="M001")
PAID = event(PurchaseAuthorised(person_id="P1", card_number=CARD, merchant_id="M001", amount_fen=1250,
                                balance_after_fen=8750, business_date=date(2026, 3, 3), authorisation_id="A1"),
             key=CARD)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def stored(ctx: Notifications, message: str) -> Message | None:
    return await ctx.messages.get(message)


# -- commands ------------------------------------------------------------------------------
def test_an_operator_resends_a_failed_message_and_the_dispatcher_is_woken() -> None:
    ctx, _ = context()

    async def scenario() -> None:
        await handlers.on_card_lost(ctx, LOST)
        lost = message_id(LOST.id, "card_lost")
        with pytest.raises(NotFailed, match=f"message {lost} is pending: only a failed message can be resent"):
            await handlers.resend_message(ctx, OPERATOR, lost, "corr-2")
        await ctx.messages.execute(lost, record_failure(now=datetime.now(UTC), channel="sms-simulator",
                                                         error="gateway down", max_attempts=1, base=1, cap=1),
                                   correlation_id="corr-1")
        ctx.dispatcher._wake.clear()
        resent = await handlers.resend_message(ctx, OPERATOR, lost, "corr-2")
        assert (resent.status, resent.attempts, resent.last_error) == ("pending", 0, None)
        assert (resent.history[-1].status, resent.history[-1].by) == ("pending", "op-wang")
        assert (await stored(ctx, lost)) == resent
        assert ctx.dispatcher._wake.is_set()
        with pytest.raises(NotFound, match="no message M0"):
            await handlers.resend_message(ctx, OPERATOR, "M0", "corr-3")

    run(scenario())


def test_the_gateway_simulator_fails_the_next_sends_and_another_channel_refuses() -> None:
    ctx, _ = context()
    simulator = run(handlers.fail_next_sends(ctx, 3))
    assert simulator.fail_next == 3 and simulator is ctx.channel
    http, _ = context(HttpSmsProvider("https://sms.example.org/send"))
    with pytest.raises(Conflict, match="the SMS channel is sms-http, not the gateway simulator"):
        run(handlers.fail_next_sends(http, 3))


def test_a_webhook_is_subscribed_to_full_type_strings_with_its_secret_sealed() -> None:
    ctx, db = context()
    body = WebhookCreate(url="https://claims.example.org/hooks", event_types=["CardLost"])  # type: ignore[arg-type]
    doc, secret = run(handlers.subscribe_webhook(ctx, body))
    kept = db["webhooks"].docs[doc["_id"]]
    assert kept["event_types"] == [CardLost.event_type()] and kept["active"]
    assert "secret" not in kept and ctx.hub.secret_of(kept) == secret
    refused = WebhookCreate(url="https://claims.example.org/hooks", event_types=["CardStolen"])  # type: ignore[arg-type]
    with pytest.raises(UnknownEventTypes, match="unknown event types: CardStolen"):
        run(handlers.subscribe_webhook(ctx, refused))
    assert len(db["webhooks"].docs) == 1


# -- events ----------------------------------------------------------------------------------
def test_a_lost_card_is_projected_and_told_once() -> None:
    ctx, db = context()

    async def scenario() -> None:
        await handlers.on_card_lost(ctx, LOST)
        await handlers.on_card_lost(ctx, LOST)  # a redelivery changes nothing
        assert db["recipients"].docs["P1"]["cards"] == {CARD: "lost"}
        [doc] = db["messages"].docs.values()
        message = ctx.messages.state_of(doc)
        assert message is not None
        assert (message.template, message.status, message.business_date) == ("card_lost", "pending", date(2026, 3, 2))
        assert message.params["voucher"] == "V1" and message.message_id == message_id(LOST.id, "card_lost")

    run(scenario())


def test_contact_details_release_the_messages_that_waited_for_them() -> None:
    ctx, db = context()

    async def scenario() -> None:
        await handlers.on_card_lost(ctx, LOST)
        lost = message_id(LOST.id, "card_lost")
        await ctx.messages.execute(lost, await_contact(now=datetime.now(UTC)), correlation_id="corr-1")
        assert (await stored(ctx, lost)).status == "awaiting_contact"  # type: ignore[union-attr]
        await handlers.on_person_registered(ctx, PERSON)
        recipient = db["recipients"].docs["P1"]
        assert (recipient["name"], recipient["mobile"], recipient["cards"]) == ("张三", "13800138000", {CARD: "lost"})
        assert (await stored(ctx, lost)).status == "pending"  # type: ignore[union-attr]

    run(scenario())


def test_the_business_date_dates_the_messages_that_carry_none() -> None:
    ctx, _ = context()

    async def scenario() -> None:
        await handlers.on_business_date_advanced(ctx, DAY)
        assert ctx.clock.today() == date(2026, 3, 3)
        await handlers.on_cardholder_news(ctx, CHANGED)
        message = await stored(ctx, message_id(CHANGED.id, "password_changed"))
        assert message is not None and message.business_date == date(2026, 3, 3)

    run(scenario())


def test_every_event_is_kept_for_the_webhooks_and_one_outside_the_table_is_passed_over() -> None:
    ctx, db = context()
    [consumer] = handlers.CONSUMERS
    handle = consumer.handler(ctx)
    unapplied = event(CardPasswordSet(person_id="P1", card_number=CARD, channel="counter"), key=CARD)
    assert type(unapplied.data) not in handlers.HANDLERS

    async def scenario() -> None:
        await handle(unapplied)
        await handle(LOST)

    run(scenario())
    assert set(db["event_log"].docs) == {event_key(unapplied), event_key(LOST)}
    assert list(db["recipients"].docs["P1"]["cards"]) == [CARD]
    assert [d["template"] for d in db["messages"].docs.values()] == ["card_lost"]


def _outcome(db: Database) -> tuple[Any, ...]:
    """What applying events left, without the instants it was applied at."""
    messages = sorted((d["_id"], d["template"], d["params"], d["business_date"], d["status"])
                      for d in db["messages"].docs.values())
    return (db["recipients"].docs, db["merchants"].docs, db["clock"].docs, set(db["event_log"].docs), messages)


def test_a_batch_applies_what_the_events_one_by_one_would() -> None:
    ctx, db = context()
    batch = [SHOP, PERSON, LOST, DAY, PAID, CHANGED]
    errors = run(handlers.apply_batch(ctx, batch))
    assert errors == [None] * len(batch)
    assert set(db["event_log"].docs) == {event_key(e) for e in batch}
    assert db["merchants"].docs["M001"]["name"] == "仁和药房"
    assert db["recipients"].docs["P1"]["cards"] == {CARD: "lost"} and db["recipients"].docs["P1"]["name"] == "张三"
    assert ctx.clock.today() == date(2026, 3, 3)
    messages = {d["template"]: ctx.messages.state_of(d) for d in db["messages"].docs.values()}
    assert sorted(messages) == ["card_lost", "password_changed", "purchase_authorised"]
    assert messages["purchase_authorised"].params["merchant"] == "仁和药房"  # type: ignore[union-attr]
    assert messages["password_changed"].business_date == date(2026, 3, 3)  # type: ignore[union-attr]
    assert run(handlers.apply_batch(ctx, batch)) == [None] * len(batch)  # a redelivered batch
    assert len(db["messages"].docs) == 3

    one_ctx, one_db = context()
    handle = handlers.CONSUMERS[0].handler(one_ctx)

    async def one_by_one() -> None:
        for e in batch:
            await handle(e)

    run(one_by_one())
    assert _outcome(one_db) == _outcome(db)
