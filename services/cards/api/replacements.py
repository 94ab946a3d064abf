"""Replacement cards: the application at the agency counter, its progress, and the
hand-over of the new card at the card management centre."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from shared.service import correlation_id

from .. import handlers
from ..deps import CardsDep, Clerk, HolderOrStaff
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


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ReplacementPublic,
             responses=errors(404, 409, 422))
async def apply(body: ReplacementCreate, request: Request, ctx: CardsDep, _: Clerk) -> ReplacementPublic:
    """Take an application for a replacement card and issue its receipt number."""
    person_id, card = await handlers.request_replacement(ctx, body, correlation_id(request))
    return replacement_public(person_id, card)


@router.get("/{receipt_number}", response_model=ReplacementPublic, responses=errors(404, 422))
async def get_replacement(receipt_number: str, ctx: CardsDep, principal: HolderOrStaff) -> ReplacementPublic:
    """Where a replacement stands: its holder, or agency and bank staff (any other role is
    refused before the number is looked up)."""
    person_id, card = await handlers.find_replacement(ctx, principal, receipt_number)
    return replacement_public(person_id, card)


@router.post("/{receipt_number}/collect", status_code=status.HTTP_201_CREATED, response_model=CardPublic,
             responses=errors(404, 409, 422))
async def collect(receipt_number: str, body: ReplacementCollect, request: Request, ctx: CardsDep,
                  _: Clerk) -> CardPublic:
    """Hand out the new card on the receipt and the ID card; the old card is cancelled."""
    person_id, card = await handlers.collect_replacement(ctx, receipt_number, body, correlation_id(request))
    return card_public(person_id, card)
