"""Webhook subscriptions, for operators: subscribe a URL to events, list and delete
subscriptions, follow and resend their deliveries, replay a time range."""

from __future__ import annotations

from fastapi import APIRouter, Response

from shared.errors import errors

from .. import handlers
from ..deps import Limit, NotificationsDep, Operator
from ..schemas import (
    DeliveriesPublic,
    DeliveryPublic,
    DeliveryStatus,
    ReplayAccepted,
    ReplayRequest,
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
    WebhooksPublic,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=errors(401, 403))


@router.post("", status_code=201, responses=errors(422))
async def subscribe(_: Operator, body: WebhookCreate, ctx: NotificationsDep) -> WebhookCreated:
    """Subscribe a URL to events; the answer shows the signing secret, once."""
    doc, secret = await handlers.subscribe_webhook(ctx, body)
    return WebhookCreated(**WebhookPublic.of(doc).model_dump(), secret=secret)


@router.get("")
async def subscriptions(_: Operator, ctx: NotificationsDep) -> WebhooksPublic:
    """The active webhook subscriptions (without their secrets)."""
    data = [WebhookPublic.of(d) for d in await ctx.hub.active()]
    return WebhooksPublic(data=data, count=len(data))


@router.get("/{webhook_id}", responses=errors(404, 422))
async def subscription(_: Operator, webhook_id: str, ctx: NotificationsDep) -> WebhookPublic:
    """One webhook subscription (without its secret)."""
    return WebhookPublic.of(await ctx.hub.get(webhook_id))


@router.delete("/{webhook_id}", status_code=204, responses=errors(404, 422))
async def unsubscribe(_: Operator, webhook_id: str, ctx: NotificationsDep) -> Response:
    """Delete a subscription; its pending deliveries are cancelled."""
    await handlers.unsubscribe_webhook(ctx, webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", responses=errors(404, 422))
async def deliveries(_: Operator, webhook_id: str, ctx: NotificationsDep, status: DeliveryStatus | None = None,
                     limit: Limit = 100) -> DeliveriesPublic:
    """The delivery log of a subscription, newest first: attempts, status codes, next attempt."""
    data = [DeliveryPublic.of(d) for d in await ctx.hub.deliveries_of(webhook_id, status, limit)]
    return DeliveriesPublic(data=data, count=len(data))


@router.post("/{webhook_id}/deliveries/{delivery_id}/resend", status_code=202, responses=errors(404, 409, 422))
async def resend(_: Operator, webhook_id: str, delivery_id: str, ctx: NotificationsDep) -> DeliveryPublic:
    """Send a delivery again: a pending one is tried now, a settled one is queued anew."""
    return DeliveryPublic.of(await handlers.resend_delivery(ctx, webhook_id, delivery_id))


@router.post("/{webhook_id}/replay", status_code=202, responses=errors(404, 422))
async def replay(_: Operator, webhook_id: str, body: ReplayRequest, ctx: NotificationsDep) -> ReplayAccepted:
    """Queue again every received event of a time range [since, until) that the subscription wants."""
    return ReplayAccepted(enqueued=await handlers.replay_events(ctx, webhook_id, body.since, body.until))
