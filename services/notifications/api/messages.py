"""Cardholders' messages: a person's, anyone's (operator), a failed one resent, and whom
notifications knows how to reach."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from shared.auth import ensure_owner_or_staff
from shared.errors import errors
from shared.ids import mask_mobile
from shared.service import correlation_id

from .. import handlers
from ..deps import Anyone, Limit, NotificationsDep, Operator
from ..domain import Message, Status
from ..schemas import MessagePublic, MessagesPublic, RecipientCard, RecipientPublic

MessageId = Annotated[str, Path(pattern=r"^M[0-9a-f]{32}$", examples=["M3b1f9c2e7d6a4e0f8c5b2a19d7e6f4c3"])]

router = APIRouter(prefix="/v1", tags=["messages"], responses=errors(401, 403))


def _page(messages: list[Message], *, staff_names: bool = True) -> MessagesPublic:
    data = [MessagePublic.of(m, staff_names=staff_names) for m in messages]
    return MessagesPublic(data=data, count=len(data))


@router.get("/persons/{person_id}/messages", responses=errors(422))
async def person_messages(person_id: str, principal: Anyone, ctx: NotificationsDep,
                          status: Status | None = None, limit: Limit = 100) -> MessagesPublic:
    """A person's messages, newest first (the cardholder themself or an operator)."""
    ensure_owner_or_staff(principal, person_id, "operator")
    query: dict[str, Any] = {"person_id": person_id}
    if status:
        query["status"] = status
    return _page(await ctx.messages_where(query, limit), staff_names=principal.role == "operator")


@router.get("/messages", responses=errors(422))
async def all_messages(_: Operator, ctx: NotificationsDep, person_id: str | None = None, status: Status | None = None,
                       limit: Limit = 100) -> MessagesPublic:
    """Anyone's messages, newest first, by person and status (operator)."""
    query: dict[str, Any] = {k: v for k, v in {"person_id": person_id, "status": status}.items() if v}
    return _page(await ctx.messages_where(query, limit))


@router.post("/messages/{message_id}/resend", status_code=202, responses=errors(404, 409, 422))
async def resend_message(message_id: MessageId, operator: Operator, ctx: NotificationsDep,
                         request: Request) -> MessagePublic:
    """Send a failed message again, its attempts reset; the resend is kept in its history (operator)."""
    return MessagePublic.of(await handlers.resend_message(ctx, operator, message_id, correlation_id(request)))


@router.get("/recipients/{person_id}", responses=errors(404, 422))
async def recipient(person_id: str, _: Operator, ctx: NotificationsDep) -> RecipientPublic:
    """How notifications reaches a person and which cards it knows for them (operator)."""
    r = await ctx.recipient(person_id)
    return RecipientPublic(person_id=r.person_id, name=r.name, mobile=mask_mobile(r.mobile) if r.mobile else None,
                           language=r.language,
                           cards=[RecipientCard(card_number=n, state=state) for n, state in r.cards.items()])
