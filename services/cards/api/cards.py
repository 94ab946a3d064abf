"""Cards: issue a card to a registered person and look cards up."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from shared.auth import CurrentPrincipal, Principal, Role, ensure_owner_or_staff, require_roles
from shared.domain import NotFound
from shared.ids import new_card_number
from shared.service import correlation_id

from .. import domain
from ..context import CardsDep, unknown
from ..schemas import CardCreate, CardPublic, CardsPublic, card_public, errors

router = APIRouter(prefix="/v1", tags=["cards"], responses=errors(401, 403))
STAFF: tuple[Role, ...] = ("clerk", "teller", "operator")


@router.post("/cards", status_code=status.HTTP_201_CREATED, response_model=CardPublic, responses=errors(404, 409, 422))
async def issue_card(body: CardCreate, request: Request, ctx: CardsDep,
                     _: Annotated[Principal, Depends(require_roles("clerk"))]) -> CardPublic:
    """Issue a card to a registered person: pending activation until the bank sets its password."""
    today = await ctx.clock.current()
    outcome = await ctx.execute_numbered(
        body.person_id, ctx.card_index, new_card_number,
        lambda number: domain.issue_card(person_id=body.person_id, card_number=number,
                                         agent_bank=body.agent_bank, today=today),
        correlation_id=correlation_id(request),
    )
    return card_public(body.person_id, outcome.result)


@router.get("/cards/{card_number}", response_model=CardPublic, responses=errors(404, 422),
            dependencies=[Depends(require_roles("cardholder", *STAFF))])
async def get_card(card_number: str, ctx: CardsDep, principal: CurrentPrincipal) -> CardPublic:
    """One card: its holder, or agency and bank staff (another person's card is not found; any
    other role is refused before the number is looked up, so the answer tells nothing of it)."""
    person_id = await ctx.person_of(ctx.card_index, card_number, "card")
    ensure_owner_or_staff(principal, person_id, *STAFF, conceal=unknown("card", card_number))
    holder = domain.known(await ctx.holders.get(person_id), person_id)
    return card_public(person_id, holder.card(card_number))


@router.get("/persons/{person_id}/cards", response_model=CardsPublic, responses=errors(404, 422))
async def list_cards(person_id: str, ctx: CardsDep, principal: CurrentPrincipal) -> CardsPublic:
    """Every card a person has held, oldest first."""
    ensure_owner_or_staff(principal, person_id, *STAFF)
    holder = await ctx.holders.get(person_id)
    if holder is None:
        raise NotFound(f"person {person_id} is not known to the cards service")
    data = [card_public(person_id, card) for card in holder.cards]
    return CardsPublic(data=data, count=len(data))
