"""The notifications service's HTTP API: cardholders' messages, the SMS gateway simulator,
webhook subscriptions (the event contract's routes come with every service's app)."""

from . import gateway, messages, webhooks

TITLE = "Notifications"
DESCRIPTION = """Tells cardholders what happens to their card and account (SMS, Chinese or English),
and forwards every event to external systems by signed webhooks (Standard Webhooks,
CloudEvents structured mode). Serves the event contract: `/asyncapi.json`,
`/asyncapi.yaml` and `/schemas/{event type}.json`."""
ROUTERS = [messages.router, gateway.router, webhooks.router]
