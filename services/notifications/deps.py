"""The notifications service's context: the message store, the projections its messages
are addressed and worded from, the SMS channel and its dispatcher, the webhook hub and the
business clock; wired once per process (``Notifications.wire``), used by the routes and
the event handlers. And what the routes depend on: the context and the roles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Self

from fastapi import Depends, Query, Request
from pymongo.asynchronous.collection import AsyncCollection

from shared.auth import CurrentPrincipal, Principal, require_roles
from shared.clock import BusinessClock
from shared.database import one_batch, partial_index
from shared.domain import Conflict, NotFound
from shared.outbox import AggregateStore
from shared.service import ServiceRuntime
from shared.settings import Settings

from .channels import HttpSmsProvider, SmsChannel, SmsGatewaySimulator
from .config import NotificationSettings, notification_settings
from .delivery import SmsDispatcher
from .domain import Message, Recipient
from .webhook_sender import WebhookSender
from .webhooks import WebhookHub


def _channel(settings: NotificationSettings, runtime: ServiceRuntime) -> SmsChannel:
    if settings.sms_channel == "http":
        provider = HttpSmsProvider(settings.sms_http_url, settings.sms_http_timeout_seconds)
        runtime.stop_hooks.append(provider.aclose)
        return provider
    return SmsGatewaySimulator(runtime.db["sms_sent"], fail_next=settings.sms_fail_next,
                               legacy=runtime.db["sms_outbox"])


@dataclass
class Notifications:
    """What the routes and the event handlers work with (built by ``wire``)."""

    messages: AggregateStore[Message]
    recipients: AsyncCollection[dict[str, Any]]
    merchants: AsyncCollection[dict[str, Any]]
    hub: WebhookHub
    channel: SmsChannel
    dispatcher: SmsDispatcher
    clock: BusinessClock

    @classmethod
    def configure(cls, settings: Settings | None) -> Settings:
        return notification_settings(settings)

    @classmethod
    def wire(cls, runtime: ServiceRuntime) -> Self:
        config = notification_settings(runtime.settings)
        messages = runtime.store("messages", Message)
        recipients, merchants = runtime.db["recipients"], runtime.db["merchants"]
        hub = WebhookHub(runtime.db, config.webhook_secret_key, config.allowed_networks)
        channel = _channel(config, runtime)
        dispatcher = SmsDispatcher(config, messages=messages, recipients=recipients, channel=channel)
        clock = BusinessClock(runtime.db)

        async def indexes() -> None:
            await clock.load()
            # Partial: a message's writes after it left a status add nothing to that status's
            # index (a sent message is written twice more; the full index of before held every
            # version of every message until the next vacuum).
            await partial_index(messages.collection, [("status", 1), ("next_attempt_at", 1)], name="due",
                                when={"status": "pending"}, replaces="status_1_next_attempt_at_1")
            for status in ("awaiting_contact", "failed"):  # an operator's lists of these
                await partial_index(messages.collection, [("status", 1), ("created_at", 1)], name=status,
                                    when={"status": status})
            await messages.collection.create_index([("person_id", 1), ("created_at", 1)])
            await hub.create_indexes()

        runtime.setup_hooks.append(indexes)
        runtime.business_date = clock.current
        runtime.background += [dispatcher.run, WebhookSender(config, hub).run]
        return cls(messages=messages, recipients=recipients, merchants=merchants, hub=hub, channel=channel,
                   dispatcher=dispatcher, clock=clock)

    async def messages_where(self, query: dict[str, Any], limit: int) -> list[Message]:
        """Messages matching ``query``, newest first."""
        docs = await one_batch(self.messages.collection.find(query).sort("created_at", -1), limit)
        return [Message.model_validate(d) for d in docs]

    async def recipient(self, person_id: str) -> Recipient:
        doc = await self.recipients.find_one({"_id": person_id})
        if doc is None:
            raise NotFound(f"notifications knows no person {person_id}")
        return Recipient.model_validate(doc)

    def simulator(self) -> SmsGatewaySimulator:
        """The SMS gateway simulator, if it is the channel in use (409 otherwise)."""
        if not isinstance(self.channel, SmsGatewaySimulator):
            raise Conflict(f"the SMS channel is {self.channel.name}, not the gateway simulator")
        return self.channel


async def notifications_of(request: Request) -> Notifications:
    """The service's context (async: FastAPI runs a plain function in a worker thread)."""
    return request.app.state.context  # type: ignore[no-any-return]


NotificationsDep = Annotated[Notifications, Depends(notifications_of)]
Operator = Annotated[Principal, Depends(require_roles("operator"))]
Anyone = CurrentPrincipal
"""Any signed-in caller: the route's own rule says who may see what (a cardholder their
own messages, an operator anyone's)."""
Limit = Annotated[int, Query(ge=1, le=500)]
