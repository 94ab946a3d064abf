"""The business clock: the simulated date every service follows."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from shared.auth import Principal, require_roles
from shared.clock import real_today
from shared.service import correlation_id

from ..clock import CLOCK_ID, Advanced, advance
from ..context import Identity, IdentityDep
from ..schemas import ClockAdvance, ClockAdvanced, ClockPublic, errors

router = APIRouter(prefix="/v1/clock", tags=["clock"])


@router.get("", response_model=ClockPublic)
async def get_clock(ctx: IdentityDep) -> ClockPublic:
    """The business date (the real date in China until the clock is first advanced)."""
    state = await ctx.clock.get(CLOCK_ID)
    return ClockPublic(date=state.date if state else real_today(), simulated=state is not None)


async def published(ctx: Identity, sequence: int) -> bool:
    """The relay has put the clock's events up to ``sequence`` on the clock topic."""
    doc = await ctx.clock.get_doc(CLOCK_ID)
    return doc is not None and doc.get("outbox_done", 0) >= sequence


@router.post("/advance", response_model=ClockAdvanced, responses=errors(401, 403, 409, 422))
async def advance_clock(body: ClockAdvance, request: Request, ctx: IdentityDep,
                        _: Annotated[Principal, Depends(require_roles("operator"))]) -> ClockAdvanced:
    """Advance the business date: one BusinessDateAdvanced per day, a MonthEnded per month crossed.

    Answers once every service has applied the new date (each one's consumer group of the
    clock topic has committed past these days), or when
    ``MEDCARD_IDENTITY_CLOCK_FOLLOWERS_WAIT_SECONDS`` have passed, naming those behind."""
    outcome = await ctx.clock.execute(
        CLOCK_ID, advance(today=real_today(), start=body.start, days=body.days, to=body.to),
        correlation_id=correlation_id(request),
    )
    result: Advanced = outcome.result
    last = outcome.events[-1].sequence if outcome.events else 0
    behind = await ctx.followers.wait(lambda: published(ctx, last),
                                      ctx.settings.identity_clock_followers_wait_seconds)
    return ClockAdvanced(previous_date=result.previous_date, date=result.date,
                         days=(result.date - result.previous_date).days, months_ended=result.months_ended,
                         applied_everywhere=not behind, services_behind=behind)
