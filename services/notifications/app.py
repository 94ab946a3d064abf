"""The notifications service: messages to cardholders, webhooks for external systems, and
the published contract. Run with ``uvicorn --factory services.notifications.app:create``."""

from __future__ import annotations

from fastapi import FastAPI

from shared.clock import BusinessClock
from shared.service import ServiceRuntime, create_app
from shared.settings import Settings
from shared.topics import TOPICS

from .api import Notifications, gateway_router, messages_router, webhooks_router
from .channels import HttpSmsProvider, SmsChannel, SmsGatewaySimulator
from .config import NotificationSettings, notification_settings
from .delivery import SmsDispatcher
from .domain import Message
from .handlers import EventHandler
from .webhook_sender import WebhookSender
from .webhooks import WebhookHub

DESCRIPTION = """Tells cardholders what happens to their card and account (SMS, Chinese or English),
and forwards every event to external systems by signed webhooks (Standard Webhooks,
CloudEvents structured mode). Serves the event contract: `/asyncapi.json`,
`/asyncapi.yaml` and `/schemas/{event type}.json`."""


def _channel(settings: NotificationSettings, runtime: ServiceRuntime) -> SmsChannel:
    if settings.sms_channel == "http":
        return HttpSmsProvider(settings.sms_http_url, settings.sms_http_timeout_seconds)
    simulator = SmsGatewaySimulator(runtime.db["sms_outbox"], fail_next=settings.sms_fail_next)
    runtime.setup_hooks.append(simulator.create_indexes)
    return simulator


def create(settings: Settings | None = None) -> FastAPI:
    config = notification_settings(settings)
    runtime = ServiceRuntime("notifications", config)
    messages = runtime.store("messages", Message)
    recipients, merchants = runtime.db["recipients"], runtime.db["merchants"]
    hub = WebhookHub(runtime.db, config.webhook_secret_key, config.allowed_networks)
    channel = _channel(config, runtime)
    dispatcher = SmsDispatcher(config, messages=messages, recipients=recipients, channel=channel)
    clock = BusinessClock(runtime.db)

    async def indexes() -> None:
        await clock.load()
        await messages.collection.create_index([("status", 1), ("next_attempt_at", 1)])
        await messages.collection.create_index([("person_id", 1), ("created_at", 1)])
        await hub.create_indexes()

    runtime.setup_hooks.append(indexes)
    runtime.business_date = clock.current
    handler = EventHandler(messages=messages, recipients=recipients, merchants=merchants, hub=hub,
                           dispatcher=dispatcher, clock=clock)
    runtime.consume(list(TOPICS), handler, batch_handler=handler.batch)
    runtime.background += [dispatcher.run, WebhookSender(config, hub).run]
    app = create_app(runtime, title="Notifications", description=DESCRIPTION,
                     routers=[messages_router, gateway_router, webhooks_router])
    app.state.notifications = Notifications(messages=messages, recipients=recipients, hub=hub, channel=channel,
                                              dispatcher=dispatcher)
    return app
