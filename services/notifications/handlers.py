"""The notifications service's handlers: one function per command and per consumed event.

Commands: an operator resends a failed message, makes the SMS gateway simulator fail,
and manages webhook subscriptions (subscribe, unsubscribe, resend a delivery, replay).

Events: every consumed event is kept and fanned out to webhooks; identity's, cards' and
bank's events feed the projections (a person's contact details release the messages that
waited for them); the clock's move the business date; cardholder-facing ones become
messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.app import EventHandler, Subscription
from shared.auth import Principal
from shared.events import (
    REGISTRY,
    BankStamped,
    BusinessDateAdvanced,
    CardActivated,
    CardCancelled,
    CardIssued,
    CardLost,
    CardPasswordChanged,
    CardPasswordLocked,
    CardPasswordReset,
    CloudEvent,
    EventData,
    FraudAlertRaised,
    MerchantRegistered,
    MonthlyTransfer,
    OnlineAccountClosed,
    OnlineAccountCodeIssued,
    OnlineAccountLocked,
    PersonRegistered,
    PurchaseAuthorised,
    PurchaseDeclined,
    ReplacementReady,
    ReplacementRequested,
)
from shared.revocations import project as project_revocation

from . import projections
from .channels import SmsGatewaySimulator
from .compose import draft_for
from .deps import Notifications
from .domain import (
    Message,
    business_date_of,
    create_message,
    event_type_index,
    message_id,
    normalise_event_types,
    resend_failed,
)
from .schemas import WebhookCreate

EVENT_TYPES = event_type_index(list(REGISTRY))


# -- commands ------------------------------------------------------------------------------
async def resend_message(ctx: Notifications, operator: Principal, message_id: str, correlation_id: str) -> Message:
    """Send a failed message again, its attempts reset; the resend is kept in its history."""
    decide = resend_failed(message_id, now=datetime.now(UTC), by=operator.sub)
    outcome = await ctx.messages.execute(message_id, decide, correlation_id=correlation_id)
    assert outcome.state is not None
    ctx.dispatcher.wake(ids=[message_id])
    return outcome.state


async def fail_next_sends(ctx: Notifications, count: int) -> SmsGatewaySimulator:
    """The simulator fails the next ``count`` sends (409 if it is not the channel in use)."""
    simulator = ctx.simulator()
    simulator.fail_next = count
    return simulator


async def subscribe_webhook(ctx: Notifications, body: WebhookCreate) -> tuple[dict[str, Any], str]:
    """A new subscription and its signing secret (shown once)."""
    types = normalise_event_types(body.event_types, EVENT_TYPES)
    return await ctx.hub.subscribe(url=str(body.url), event_types=types, secret=body.secret)


async def unsubscribe_webhook(ctx: Notifications, webhook_id: str) -> None:
    """Delete a subscription; its pending deliveries are cancelled."""
    await ctx.hub.unsubscribe(webhook_id)


async def resend_delivery(ctx: Notifications, webhook_id: str, delivery_id: str) -> dict[str, Any]:
    """A pending delivery is tried now, a settled one is queued anew."""
    return await ctx.hub.resend(webhook_id, delivery_id)


async def replay_events(ctx: Notifications, webhook_id: str, since: datetime, until: datetime) -> int:
    """Queue again every received event of [since, until) that the subscription wants; how many."""
    return await ctx.hub.replay(webhook_id, since, until)


# -- events ----------------------------------------------------------------------------------
async def on_every_event(ctx: Notifications, event: CloudEvent) -> None:
    """Every event of every topic is kept (for replays) and queued for the webhooks that want it."""
    await ctx.hub.record(event)


async def on_business_date_advanced(ctx: Notifications, event: CloudEvent) -> None:
    await ctx.clock.apply(event)


async def on_person_registered(ctx: Notifications, event: CloudEvent) -> None:
    """The person's contact details: their messages that waited for them are due now."""
    assert isinstance(event.data, PersonRegistered)
    await projections.project(ctx.recipients.database, event)
    await ctx.dispatcher.contact_arrived(event.data.person_id)  # also on a redelivery: a crash may have come between


async def on_card_issued(ctx: Notifications, event: CloudEvent) -> None:
    """A card is the person's (a replacement handed out is told)."""
    await projections.project(ctx.recipients.database, event)
    await compose(ctx, event)


async def on_card_activated(ctx: Notifications, event: CloudEvent) -> None:
    await projections.project(ctx.recipients.database, event)


async def on_card_lost(ctx: Notifications, event: CloudEvent) -> None:
    await projections.project(ctx.recipients.database, event)
    await compose(ctx, event)


async def on_card_cancelled(ctx: Notifications, event: CloudEvent) -> None:
    await projections.project(ctx.recipients.database, event)


async def on_merchant_registered(ctx: Notifications, event: CloudEvent) -> None:
    """The merchant's name, for the messages of purchases there."""
    await projections.project(ctx.recipients.database, event)


async def on_online_account_locked(ctx: Notifications, event: CloudEvent) -> None:
    await project_revocation(ctx.recipients.database, event)  # a lock refuses old tokens


async def on_online_account_closed(ctx: Notifications, event: CloudEvent) -> None:
    await project_revocation(ctx.recipients.database, event)  # a closure refuses old tokens


async def on_cardholder_news(ctx: Notifications, event: CloudEvent) -> None:
    """An event the cardholder only hears about: its message (``compose.draft_for``)."""
    await compose(ctx, event)


async def compose(ctx: Notifications, event: CloudEvent) -> None:
    """The cardholder's message for this event, created once (a redelivery changes nothing)."""
    merchant_name = None
    merchant_id = getattr(event.data, "merchant_id", None)
    if merchant_id:
        merchant = await ctx.merchants.find_one({"_id": merchant_id})
        merchant_name = merchant["name"] if merchant else None
    draft = draft_for(event.data, merchant_name)
    if draft is None:
        return
    created, now = message_id(event.id, draft.template), datetime.now(UTC)
    held_until = ctx.dispatcher.hold(now)  # this process's dispatcher sends it without a claim
    await ctx.messages.execute(
        created, create_message(draft, event, now, business_date_of(event, ctx.clock.today()), held_until),
        correlation_id=event.correlationid, cause=event,
    )
    ctx.dispatcher.wake(urgent=draft.urgent, ids=[created], held_until=held_until)


HANDLERS: dict[type[EventData], EventHandler[Notifications]] = {
    BusinessDateAdvanced: on_business_date_advanced,
    PersonRegistered: on_person_registered,
    CardIssued: on_card_issued,
    CardActivated: on_card_activated,
    CardLost: on_card_lost,
    CardCancelled: on_card_cancelled,
    MerchantRegistered: on_merchant_registered,
    OnlineAccountLocked: on_online_account_locked,
    OnlineAccountClosed: on_online_account_closed,
    OnlineAccountCodeIssued: on_cardholder_news,
    ReplacementRequested: on_cardholder_news,
    BankStamped: on_cardholder_news,
    ReplacementReady: on_cardholder_news,
    MonthlyTransfer: on_cardholder_news,
    PurchaseAuthorised: on_cardholder_news,
    PurchaseDeclined: on_cardholder_news,
    FraudAlertRaised: on_cardholder_news,
    CardPasswordChanged: on_cardholder_news,
    CardPasswordLocked: on_cardholder_news,
    CardPasswordReset: on_cardholder_news,
}
"""The events notifications applies, beside keeping every event for the webhooks."""

BATCHED: frozenset[EventHandler[Notifications]] = frozenset({
    on_person_registered, on_card_issued, on_card_activated, on_card_lost, on_card_cancelled,
    on_merchant_registered, on_cardholder_news})
"""The handlers whose work ``apply_batch`` does for a whole batch at once (projections,
waiting messages released, messages created); the others it calls event by event."""


async def apply_batch(ctx: Notifications, events: list[CloudEvent]) -> list[Exception | None]:
    """A fetched batch at once: the events kept by one insert, the projections by one
    ordered bulk write per collection, the merchants named by one read, every message
    created by one write (``execute_batch``). A refused event raises (the consumer
    then applies the batch one event at a time, and dead-letters that one)."""
    await ctx.hub.record_many(events)
    for event in events:  # the business date (dating the messages below), token revocations
        handler = HANDLERS.get(type(event.data))
        if handler is not None and handler not in BATCHED:
            await handler(ctx, event)
    await projections.project_many(ctx.recipients.database, events)
    for event in events:
        if isinstance(event.data, PersonRegistered):  # also on a redelivery (see ``on_person_registered``)
            await ctx.dispatcher.contact_arrived(event.data.person_id)
    merchant_ids = {m for e in events if (m := getattr(e.data, "merchant_id", None))}
    names = ({d["_id"]: d.get("name") for d in await ctx.merchants.find(
        {"_id": {"$in": sorted(merchant_ids)}}, {"name": 1}).to_list()} if merchant_ids else {})
    items, urgent = [], False
    now, today = datetime.now(UTC), ctx.clock.today()
    held_until = ctx.dispatcher.hold(now)  # this process's dispatcher sends them without a claim
    for event in events:
        draft = draft_for(event.data, names.get(getattr(event.data, "merchant_id", None) or ""))
        if draft is not None:
            urgent |= draft.urgent
            items.append((message_id(event.id, draft.template),
                          create_message(draft, event, now, business_date_of(event, today), held_until), event))
    errors: list[Exception | None] = [None] * len(events)
    if items:
        # Fresh: a message's id derives from its cause, so it is new but for a redelivery.
        for applied in await ctx.messages.execute_batch(items, fresh=True):
            if applied.error is not None:
                raise applied.error
        ctx.dispatcher.wake(urgent=urgent, ids=[item[0] for item in items], held_until=held_until)
    return errors


CONSUMERS = [Subscription(HANDLERS, batch=apply_batch, every_event=on_every_event)]
