"""Stamping replacement receipts at the bank counter."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request

from shared.auth import require_roles
from shared.domain import NotFound
from shared.errors import errors
from shared.service import correlation_id

from .. import domain
from ..schemas import StampCreate, StampPublic
from ..deps import BankDep

router = APIRouter(prefix="/v1/stamps", tags=["stamps"], responses=errors(401, 403))


@router.post("", status_code=201, dependencies=[Depends(require_roles("teller"))], responses=errors(404, 409, 422))
async def stamp_receipt(body: StampCreate, bank: BankDep, request: Request) -> StampPublic:
    """Stamp a replacement receipt with the branch seal and the processing time (reports the loss if needed)."""
    person_id = await bank.person_of_receipt(body.receipt_number)
    if person_id is None:
        raise NotFound(f"replacement receipt {body.receipt_number} is unknown to the bank")
    decide = domain.stamp_receipt(body.receipt_number, body.branch, body.seal, datetime.now(UTC),
                                  await bank.clock.current())
    outcome = await bank.accounts.execute(person_id, decide, correlation_id=correlation_id(request))
    return StampPublic(**outcome.result.model_dump())
