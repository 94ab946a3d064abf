"""Cards: issue a card to a registered person and look cards up."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from shared.auth import CurrentPrincipal
from shared.service import correlation_id

from .. import handlers
from ..deps import CardsDep, Clerk, HolderOrStaff
from ..schemas import CardCreate, CardPublic, CardsPublic, card_public, errors

router = APIRouter(prefix="/v1", tags=["cards"], responses=errors(401, 403))


@router.post("/cards", status_code=status.HTTP_201_CREATED, response_model=CardPublic, responses=errors(404, 409, 422))
async def issue_card(body: CardCreate, request: Request, ctx: CardsDep, _: Clerk) -> CardPublic:
    """Issue a card to a registered person: pending activation until the bank sets its password."""
    card = await handlers.issue_card(ctx, body, correlation_id(request))
    return card_public(body.person_id, card)


@router.get("/cards/{card_number}", response_model=CardPublic, responses=errors(404, 422))
async def get_card(card_number: str, ctx: CardsDep, principal: HolderOrStaff) -> CardPublic:
    """One card: its holder, or agency and bank staff (another person's card is not found; any
    other role is refused before the number is looked up, so the answer tells nothing of it)."""
    person_id, card = await handlers.find_card(ctx, principal, card_number)
    return card_public(person_id, card)


@router.get("/persons/{person_id}/cards", response_model=CardsPublic, responses=errors(404, 422))
async def list_cards(person_id: str, ctx: CardsDep, principal: CurrentPrincipal) -> CardsPublic:
    """Every card a person has held, oldest first."""
    data = [card_public(person_id, card) for card in await handlers.cards_of_person(ctx, principal, person_id)]
    return CardsPublic(data=data, count=len(data))
