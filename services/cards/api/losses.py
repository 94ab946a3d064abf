"""Loss reports: online by the cardholder, at the bank counter by a teller, and the
public query by voucher number and ID number."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from shared.auth import Principal, require_roles
from shared.domain import NotFound
from shared.events.cards import LossChannel
from shared.guard import uniform_answer
from shared.ids import new_reference
from shared.service import correlation_id

from .. import domain
from ..context import Cards, CardsDep
from ..model import Presented
from ..schemas import (
    LossReportAtBank,
    LossReportOnline,
    LossReportPublic,
    LossReportQuery,
    LossReportStatus,
    errors,
    loss_public,
    loss_status,
)

router = APIRouter(prefix="/v1/loss-reports", tags=["loss reports"])
REPEAT_EXAMPLE = {
    "voucher": "V583920174625", "card_number_masked": "6216***********0018", "channel": "online",
    "business_date": "2026-01-05", "reported_at": "2026-01-05T02:13:09Z", "letter_reference": None,
    "card_state": "lost", "blocked": True, "block": "confirmed",
}
"""A second report, here while the replacement is being made: the first report's voucher, channel and time."""
BLOCKED_EXAMPLE = {**REPEAT_EXAMPLE, "card_state": "lost"}
"""A new report the bank confirmed before the answer."""
PENDING_EXAMPLE = {
    "voucher": "V583920174626", "card_number_masked": "6216***********0026", "channel": "bank",
    "business_date": "2026-01-05", "reported_at": "2026-01-05T02:13:09Z", "letter_reference": "HX-2026-0031",
    "card_state": "lost", "blocked": False, "block": "pending",
}
"""A new report the bank had not yet confirmed when the wait ran out."""
NEW_OR_REPEAT: dict[int | str, dict[str, object]] = {
    200: {"model": LossReportPublic, "content": {"application/json": {"example": REPEAT_EXAMPLE}},
          "description": "The card was already reported lost: the same voucher, nothing published; "
                         "'blocked' tells whether the bank has stopped it"},
    201: {"content": {"application/json": {"examples": {
              "blocked": {"summary": "The bank has stopped the card", "value": BLOCKED_EXAMPLE},
              "pending": {"summary": "The bank had not confirmed in time", "value": PENDING_EXAMPLE}}}},
          "description": "A new voucher; 'blocked': true once the bank has stopped the card (no purchase on it is "
                         "approved from then on), else 'blocked': false, 'block': 'pending'"},
}


async def report(ctx: Cards, request: Request, response: Response, *, person_id: str, card_number: str | None,
                 presented: Presented, channel: LossChannel,
                 letter_reference: str | None = None) -> LossReportPublic:
    """Block the card; 201 with a new voucher, or 200 with the voucher of the earlier report.
    Either answers once the bank has confirmed the block, or after ``loss_block_wait_seconds``
    with the block pending."""
    today, now = await ctx.clock.current(), datetime.now(UTC)
    outcome = await ctx.execute_numbered(
        person_id, ctx.voucher_index, lambda: new_reference("V"),
        lambda voucher: domain.report_loss(person_id=person_id, card_number=card_number, presented=presented,
                                           channel=channel, voucher=voucher, today=today, now=now,
                                           letter_reference=letter_reference),
        correlation_id=correlation_id(request),
    )
    response.status_code = status.HTTP_201_CREATED if outcome.events else status.HTTP_200_OK
    return loss_public(await ctx.blocked(person_id, outcome.result))


@router.post("/online", response_model=LossReportPublic, status_code=status.HTTP_201_CREATED,
             responses={**NEW_OR_REPEAT, **errors(401, 403, 404, 409, 422)})
async def report_online(body: LossReportOnline, request: Request, response: Response, ctx: CardsDep,
                        principal: Annotated[Principal, Depends(require_roles("cardholder"))]) -> LossReportPublic:
    """Report your card lost: name, ID number and mobile must match; answers once the bank has blocked it."""
    assert principal.person_id is not None
    presented = Presented(id_number_digest=ctx.presented_digest(body.id_number), name=body.name,
                                 mobile=body.mobile)
    return await report(ctx, request, response, person_id=principal.person_id, card_number=None,
                        presented=presented, channel="online")


@router.post("/bank", response_model=LossReportPublic, status_code=status.HTTP_201_CREATED,
             responses={**NEW_OR_REPEAT, **errors(401, 403, 404, 409, 422)})
async def report_at_bank(body: LossReportAtBank, request: Request, response: Response, ctx: CardsDep,
                         _: Annotated[Principal, Depends(require_roles("teller"))]) -> LossReportPublic:
    """A bank teller records a loss on the employer's stamped letter of proof and the ID card; answers once
    the bank has blocked it."""
    person_id = await ctx.person_of(ctx.card_index, body.card_number, "card")
    presented = Presented(id_number_digest=ctx.presented_digest(body.id_number))
    return await report(ctx, request, response, person_id=person_id, card_number=body.card_number,
                        presented=presented, channel="bank", letter_reference=body.letter_reference)


@router.post("/query", response_model=LossReportStatus, responses=errors(404, 422, 429))
async def query_report(body: LossReportQuery, request: Request, ctx: CardsDep) -> LossReportStatus:
    """Query a loss report by voucher number and ID number (no login needed): masked data
    only. A POST, so that the ID number travels in the body and never in a URL (URLs end up
    in access logs, proxies and browser history). Limited per client and per voucher, and
    answered in the same time whether or not voucher and ID number belong together."""
    async with uniform_answer(ctx.settings.uniform_answer_seconds):
        digest = ctx.presented_digest(body.id_number)
        await ctx.limits.admit("loss-query", request, subject=("voucher", body.voucher),
                               per_subject=ctx.settings.rate_limit_per_voucher)
        doc = await ctx.voucher_index.find_one({"_id": body.voucher})
        holder = await ctx.holders.get(doc["person_id"]) if doc else None
        card = holder.by_voucher(body.voucher) if holder else None
        if holder is None or card is None or not hmac.compare_digest(holder.id_number_digest, digest):
            raise NotFound("no loss report with this voucher number and ID number")
        return loss_status(card)
