"""Event handlers: every consumed event is kept and fanned out to webhooks; identity's,
cards' and bank's events feed the projections (a person's contact details release the
messages that waited for them); the clock's move the business date; cardholder-facing
ones become messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from shared.clock import BusinessClock
from shared.events import BusinessDateAdvanced, CloudEvent, PersonRegistered
from shared.outbox import AggregateStore
from shared.revocations import project as project_revocation

from . import projections
from .compose import draft_for
from .delivery import SmsDispatcher
from .domain import Message, business_date_of, create_message, message_id
from .webhooks import WebhookHub


class EventHandler:
    def __init__(
        self,
        *,
        messages: AggregateStore[Message],
        recipients: AsyncCollection[dict[str, Any]],
        merchants: AsyncCollection[dict[str, Any]],
        hub: WebhookHub,
        dispatcher: SmsDispatcher,
        clock: BusinessClock,
    ) -> None:
        self.messages = messages
        self.recipients = recipients
        self.merchants = merchants
        self.hub = hub
        self.dispatcher = dispatcher
        self.clock = clock

    async def __call__(self, event: CloudEvent) -> None:
        await self.hub.record(event)
        if isinstance(event.data, BusinessDateAdvanced):
            await self.clock.apply(event)
        await projections.project(self.recipients.database, event)
        await project_revocation(self.recipients.database, event)  # a lock or closure refuses old tokens
        if isinstance(event.data, PersonRegistered):  # also on a redelivery: a crash may have come between
            await self.dispatcher.contact_arrived(event.data.person_id)
        await self._compose(event)

    async def batch(self, events: list[CloudEvent]) -> list[Exception | None]:
        """A fetched batch at once: the events kept by one insert, the projections by one
        ordered bulk write per collection, the merchants named by one read, every message
        created by one write (``execute_batch``). A refused event raises (the consumer
        then applies the batch one event at a time, and dead-letters that one)."""
        await self.hub.record_many(events)
        for event in events:
            if isinstance(event.data, BusinessDateAdvanced):
                await self.clock.apply(event)
        await projections.project_many(self.recipients.database, events)
        for event in events:
            await project_revocation(self.recipients.database, event)  # a lock or closure refuses old tokens
            if isinstance(event.data, PersonRegistered):  # also on a redelivery (see ``__call__``)
                await self.dispatcher.contact_arrived(event.data.person_id)
        merchant_ids = {m for e in events if (m := getattr(e.data, "merchant_id", None))}
        names = ({d["_id"]: d.get("name") for d in await self.merchants.find(
            {"_id": {"$in": sorted(merchant_ids)}}, {"name": 1}).to_list()} if merchant_ids else {})
        items = []
        now, today = datetime.now(UTC), self.clock.today()
        for event in events:
            draft = draft_for(event.data, names.get(getattr(event.data, "merchant_id", None) or ""))
            if draft is not None:
                items.append((message_id(event.id, draft.template),
                              create_message(draft, event, now, business_date_of(event, today)), event))
        errors: list[Exception | None] = [None] * len(events)
        if items:
            for applied in await self.messages.execute_batch(items):
                if applied.error is not None:
                    raise applied.error
            self.dispatcher.wake()
        return errors

    async def _compose(self, event: CloudEvent) -> None:
        """The cardholder's message for this event, created once (a redelivery changes nothing)."""
        merchant_name = None
        merchant_id = getattr(event.data, "merchant_id", None)
        if merchant_id:
            merchant = await self.merchants.find_one({"_id": merchant_id})
            merchant_name = merchant["name"] if merchant else None
        draft = draft_for(event.data, merchant_name)
        if draft is None:
            return
        await self.messages.execute(
            message_id(event.id, draft.template),
            create_message(draft, event, datetime.now(UTC), business_date_of(event, self.clock.today())),
            correlation_id=event.correlationid, cause=event,
        )
        self.dispatcher.wake()
