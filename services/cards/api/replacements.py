"""Replacement cards: the application at the agency counter, its progress, and the
hand-over of the new card at the card management centre."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from shared.auth import CurrentPrincipal, Principal, ensure_owner_or_staff, require_roles
from shared.ids import new_card_number, new_reference
from shared.service import correlation_id

from .. import domain
from ..context import CardsDep, unknown
from ..model import Presented
from ..schemas import (
    CardPublic,
    ReplacementCollect,
    ReplacementCreate,
    ReplacementPublic,
    card_public,
    errors,
    replacement_public,
)

router = APIRouter(prefix="/v1/replacements", tags=["replacements"], responses=errors(401, 403))
Clerk = Annotated[Principal, Depends(require_roles("clerk"))]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ReplacementPublic,
             responses=errors(404, 409, 422))
async def apply(body: ReplacementCreate, request: Request, ctx: CardsDep, _: Clerk) -> ReplacementPublic:
    """Take an application for a replacement card and issue its receipt number."""
    person_id = await ctx.person_of(ctx.card_index, body.card_number, "card")
    presented = Presented(id_number_digest=ctx.presented_digest(body.id_number))
    today = await ctx.clock.current()
    outcome = await ctx.execute_numbered(
        person_id, ctx.receipt_index, lambda: new_reference("R"),
        lambda receipt: domain.request_replacement(person_id=person_id, card_number=body.card_number,
                                                   presented=presented, receipt_number=receipt,
                                                   broken_card=body.broken_card, today=today),
        correlation_id=correlation_id(request),
    )
    return replacement_public(person_id, outcome.result)


@router.get("/{receipt_number}", response_model=ReplacementPublic, responses=errors(404, 422),
            dependencies=[Depends(require_roles("cardholder", "clerk", "teller", "operator"))])
async def get_replacement(receipt_number: str, ctx: CardsDep, principal: CurrentPrincipal) -> ReplacementPublic:
    """Where a replacement stands: its holder, or agency and bank staff (any other role is
    refused before the number is looked up)."""
    person_id = await ctx.person_of(ctx.receipt_index, receipt_number, "replacement receipt")
    ensure_owner_or_staff(principal, person_id, "clerk", "teller", "operator",
                          conceal=unknown("replacement receipt", receipt_number))
    holder = domain.known(await ctx.holders.get(person_id), person_id)
    return replacement_public(person_id, holder.by_receipt(receipt_number))


@router.post("/{receipt_number}/collect", status_code=status.HTTP_201_CREATED, response_model=CardPublic,
             responses=errors(404, 409, 422))
async def collect(receipt_number: str, body: ReplacementCollect, request: Request, ctx: CardsDep,
                  _: Clerk) -> CardPublic:
    """Hand out the new card on the receipt and the ID card; the old card is cancelled."""
    person_id = await ctx.person_of(ctx.receipt_index, receipt_number, "replacement receipt")
    presented = Presented(id_number_digest=ctx.presented_digest(body.id_number))
    today = await ctx.clock.current()
    outcome = await ctx.execute_numbered(
        person_id, ctx.card_index, new_card_number,
        lambda number: domain.collect(person_id=person_id, receipt_number=receipt_number, presented=presented,
                                      new_card_number=number, today=today),
        correlation_id=correlation_id(request),
    )
    return card_public(person_id, outcome.result)
