"""Loss reports: online by the cardholder, at the bank counter by a teller, and the
public query by voucher number and ID number."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from shared.guard import uniform_answer
from shared.service import correlation_id

from .. import handlers
from ..deps import CardholderRole, CardsDep, Teller
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


def answer(response: Response, reported: handlers.Reported) -> LossReportPublic:
    """201 with a new voucher, or 200 with the voucher of the earlier report."""
    response.status_code = status.HTTP_201_CREATED if reported.new else status.HTTP_200_OK
    return loss_public(reported.card)


@router.post("/online", response_model=LossReportPublic, status_code=status.HTTP_201_CREATED,
             responses={**NEW_OR_REPEAT, **errors(401, 403, 404, 409, 422)})
async def report_online(body: LossReportOnline, request: Request, response: Response, ctx: CardsDep,
                        principal: CardholderRole) -> LossReportPublic:
    """Report your card lost: name, ID number and mobile must match; answers once the bank has blocked it."""
    return answer(response, await handlers.report_loss_online(ctx, principal, body, correlation_id(request)))


@router.post("/bank", response_model=LossReportPublic, status_code=status.HTTP_201_CREATED,
             responses={**NEW_OR_REPEAT, **errors(401, 403, 404, 409, 422)})
async def report_at_bank(body: LossReportAtBank, request: Request, response: Response, ctx: CardsDep,
                         _: Teller) -> LossReportPublic:
    """A bank teller records a loss on the employer's stamped letter of proof and the ID card; answers once
    the bank has blocked it."""
    return answer(response, await handlers.report_loss_at_bank(ctx, body, correlation_id(request)))


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
        return loss_status(await handlers.find_loss_report(ctx, body.voucher, digest))
