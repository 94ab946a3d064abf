"""The business clock: the simulated date every service follows."""

from __future__ import annotations

from fastapi import APIRouter, Request

from shared.service import correlation_id

from .. import handlers
from ..deps import IdentityDep, Operator
from ..schemas import ClockAdvance, ClockAdvanced, ClockPublic, errors

router = APIRouter(prefix="/v1/clock", tags=["clock"])


@router.get("", response_model=ClockPublic)
async def get_clock(ctx: IdentityDep) -> ClockPublic:
    """The business date (the real date in China until the clock is first advanced)."""
    return await handlers.clock_now(ctx)


@router.post("/advance", response_model=ClockAdvanced, responses=errors(401, 403, 409, 422))
async def advance_clock(body: ClockAdvance, request: Request, ctx: IdentityDep, _: Operator) -> ClockAdvanced:
    """Advance the business date: one BusinessDateAdvanced per day, a MonthEnded per month crossed.

    Answers once every service has applied the new date (each one's consumer group of the
    clock topic has committed past these days), or when
    ``MEDCARD_IDENTITY_CLOCK_FOLLOWERS_WAIT_SECONDS`` have passed, naming those behind."""
    return await handlers.advance_clock(ctx, body, correlation_id(request))
