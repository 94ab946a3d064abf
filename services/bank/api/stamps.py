"""Stamping replacement receipts at the bank counter."""

from __future__ import annotations

from fastapi import APIRouter, Request

from shared.errors import errors
from shared.service import correlation_id

from .. import handlers
from ..deps import BankDep, Teller
from ..schemas import StampCreate, StampPublic

router = APIRouter(prefix="/v1/stamps", tags=["stamps"], responses=errors(401, 403))


@router.post("", status_code=201, responses=errors(404, 409, 422))
async def stamp_receipt(body: StampCreate, _: Teller, bank: BankDep, request: Request) -> StampPublic:
    """Stamp a replacement receipt with the branch seal and the processing time (reports the loss if needed)."""
    stamped = await handlers.stamp_receipt(bank, body, correlation_id(request))
    return StampPublic(**stamped.model_dump())
