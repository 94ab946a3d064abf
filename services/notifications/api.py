"""HTTP API: cardholders' messages, the SMS gateway simulator, webhook subscriptions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pymongo.asynchronous.collection import AsyncCollection

from shared.auth import CurrentPrincipal, Principal, ensure_owner_or_staff, require_roles
from shared.domain import Conflict, NotFound
from shared.errors import errors
from shared.events import REGISTRY
from shared.ids import mask_mobile
from shared.outbox import AggregateStore
from shared.service import correlation_id

from .channels import SmsChannel, SmsGatewaySimulator
from .delivery import SmsDispatcher
from .domain import Message, Recipient, Status, event_type_index, normalise_event_types, resend_failed
from .schemas import (
    DeliveriesPublic,
    DeliveryPublic,
    DeliveryStatus,
    MessagePublic,
    MessagesPublic,
    RecipientCard,
    RecipientPublic,
    ReplayAccepted,
    ReplayRequest,
    SmsFailuresUpdate,
    SmsGatewayState,
    SmsOutbox,
    SmsPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
    WebhooksPublic,
)
from .webhooks import WebhookHub


@dataclass
class Notifications:
    """What the routes work with (built by app.create)."""

    messages: AggregateStore[Message]
    recipients: AsyncCollection[dict[str, Any]]
    hub: WebhookHub
    channel: SmsChannel
    dispatcher: SmsDispatcher


async def _parts(request: Request) -> Notifications:
    return request.app.state.notifications  # type: ignore[no-any-return]


Parts = Annotated[Notifications, Depends(_parts)]
Operator = Annotated[Principal, Depends(require_roles("operator"))]
Limit = Annotated[int, Query(ge=1, le=500)]
MessageId = Annotated[str, Path(pattern=r"^M[0-9a-f]{32}$", examples=["M3b1f9c2e7d6a4e0f8c5b2a19d7e6f4c3"])]
EVENT_TYPES = event_type_index(list(REGISTRY))

messages_router = APIRouter(prefix="/v1", tags=["messages"], responses=errors(401, 403))
gateway_router = APIRouter(prefix="/v1/sms-gateway", tags=["sms gateway"], responses=errors(401, 403))
webhooks_router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=errors(401, 403),
                            dependencies=[Depends(require_roles("operator"))])


async def _messages(parts: Notifications, query: dict[str, Any], limit: int, *,
                    staff_names: bool = True) -> MessagesPublic:
    docs = await parts.messages.collection.find(query).sort("created_at", -1).limit(limit).to_list()
    data = [MessagePublic.of(Message.model_validate(d), staff_names=staff_names) for d in docs]
    return MessagesPublic(data=data, count=len(data))


@messages_router.get("/persons/{person_id}/messages", responses=errors(422))
async def person_messages(person_id: str, principal: CurrentPrincipal, parts: Parts,
                          status: Status | None = None, limit: Limit = 100) -> MessagesPublic:
    """A person's messages, newest first (the cardholder themself or an operator)."""
    ensure_owner_or_staff(principal, person_id, "operator")
    query: dict[str, Any] = {"person_id": person_id}
    if status:
        query["status"] = status
    return await _messages(parts, query, limit, staff_names=principal.role == "operator")


@messages_router.get("/messages", responses=errors(422))
async def all_messages(_: Operator, parts: Parts, person_id: str | None = None, status: Status | None = None,
                       limit: Limit = 100) -> MessagesPublic:
    """Anyone's messages, newest first, by person and status (operator)."""
    query: dict[str, Any] = {k: v for k, v in {"person_id": person_id, "status": status}.items() if v}
    return await _messages(parts, query, limit)


@messages_router.post("/messages/{message_id}/resend", status_code=202, responses=errors(404, 409, 422))
async def resend_message(message_id: MessageId, operator: Operator, parts: Parts, request: Request) -> MessagePublic:
    """Send a failed message again, its attempts reset; the resend is kept in its history (operator)."""
    decide = resend_failed(message_id, now=datetime.now(UTC), by=operator.sub)
    outcome = await parts.messages.execute(message_id, decide, correlation_id=correlation_id(request))
    assert outcome.state is not None
    parts.dispatcher.wake()
    return MessagePublic.of(outcome.state)


@messages_router.get("/recipients/{person_id}", responses=errors(404, 422))
async def recipient(person_id: str, _: Operator, parts: Parts) -> RecipientPublic:
    """How notifications reaches a person and which cards it knows for them (operator)."""
    doc = await parts.recipients.find_one({"_id": person_id})
    if doc is None:
        raise NotFound(f"notifications knows no person {person_id}")
    r = Recipient.model_validate(doc)
    return RecipientPublic(person_id=r.person_id, name=r.name, mobile=mask_mobile(r.mobile) if r.mobile else None,
                           language=r.language,
                           cards=[RecipientCard(card_number=n, state=state) for n, state in r.cards.items()])


def _simulator(parts: Notifications) -> SmsGatewaySimulator:
    if not isinstance(parts.channel, SmsGatewaySimulator):
        raise Conflict(f"the SMS channel is {parts.channel.name}, not the gateway simulator")
    return parts.channel


@gateway_router.get("")
async def gateway_state(_: Operator, parts: Parts) -> SmsGatewayState:
    """The SMS channel in use and how many sends the simulator will still fail (operator)."""
    fail_next = parts.channel.fail_next if isinstance(parts.channel, SmsGatewaySimulator) else 0
    return SmsGatewayState(channel=parts.channel.name, fail_next=fail_next)


@gateway_router.post("/failures", responses=errors(409, 422))
async def fail_next_sends(body: SmsFailuresUpdate, _: Operator, parts: Parts) -> SmsGatewayState:
    """Make the simulator fail the next N sends, to watch retries and failures (operator)."""
    simulator = _simulator(parts)
    simulator.fail_next = body.count
    return SmsGatewayState(channel=simulator.name, fail_next=simulator.fail_next)


@gateway_router.get("/outbox", responses=errors(409, 422))
async def gateway_outbox(_: Operator, parts: Parts, person_id: str | None = None, limit: Limit = 100) -> SmsOutbox:
    """The SMS the simulator delivered, oldest first (operator)."""
    data = [SmsPublic.of(d) for d in await _simulator(parts).sent_to(person_id, limit)]
    return SmsOutbox(data=data, count=len(data))


@webhooks_router.post("", status_code=201, responses=errors(422))
async def subscribe(body: WebhookCreate, parts: Parts) -> WebhookCreated:
    """Subscribe a URL to events; the answer shows the signing secret, once."""
    types = normalise_event_types(body.event_types, EVENT_TYPES)
    doc, secret = await parts.hub.subscribe(url=str(body.url), event_types=types, secret=body.secret)
    return WebhookCreated(**WebhookPublic.of(doc).model_dump(), secret=secret)


@webhooks_router.get("")
async def subscriptions(parts: Parts) -> WebhooksPublic:
    """The active webhook subscriptions (without their secrets)."""
    data = [WebhookPublic.of(d) for d in await parts.hub.active()]
    return WebhooksPublic(data=data, count=len(data))


@webhooks_router.get("/{webhook_id}", responses=errors(404, 422))
async def subscription(webhook_id: str, parts: Parts) -> WebhookPublic:
    """One webhook subscription (without its secret)."""
    return WebhookPublic.of(await parts.hub.get(webhook_id))


@webhooks_router.delete("/{webhook_id}", status_code=204, responses=errors(404, 422))
async def unsubscribe(webhook_id: str, parts: Parts) -> Response:
    """Delete a subscription; its pending deliveries are cancelled."""
    await parts.hub.unsubscribe(webhook_id)
    return Response(status_code=204)


@webhooks_router.get("/{webhook_id}/deliveries", responses=errors(404, 422))
async def deliveries(webhook_id: str, parts: Parts, status: DeliveryStatus | None = None,
                     limit: Limit = 100) -> DeliveriesPublic:
    """The delivery log of a subscription, newest first: attempts, status codes, next attempt."""
    data = [DeliveryPublic.of(d) for d in await parts.hub.deliveries_of(webhook_id, status, limit)]
    return DeliveriesPublic(data=data, count=len(data))


@webhooks_router.post("/{webhook_id}/deliveries/{delivery_id}/resend", status_code=202,
                       responses=errors(404, 409, 422))
async def resend(webhook_id: str, delivery_id: str, parts: Parts) -> DeliveryPublic:
    """Send a delivery again: a pending one is tried now, a settled one is queued anew."""
    return DeliveryPublic.of(await parts.hub.resend(webhook_id, delivery_id))


@webhooks_router.post("/{webhook_id}/replay", status_code=202, responses=errors(404, 422))
async def replay(webhook_id: str, body: ReplayRequest, parts: Parts) -> ReplayAccepted:
    """Queue again every received event of a time range [since, until) that the subscription wants."""
    return ReplayAccepted(enqueued=await parts.hub.replay(webhook_id, body.since, body.until))
