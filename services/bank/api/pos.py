"""The merchant registry, POS authorisation and the POS balance inquiry."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request

from shared.errors import errors
from shared.service import correlation_id

from .. import handlers
from ..deps import BankDep, Operator, Staff, Terminal
from ..schemas import (
    MerchantCreate,
    MerchantPublic,
    MerchantsPublic,
    PosAuthorisationCreate,
    PosAuthorisationPublic,
    PosBalanceInquiryCreate,
    PosBalanceInquiryPublic,
)

merchants = APIRouter(prefix="/v1/merchants", tags=["merchants"], responses=errors(401, 403))
pos = APIRouter(prefix="/v1/pos", tags=["pos"], responses=errors(401, 403))


@merchants.post("", status_code=201, responses=errors(409, 422))
async def register_merchant(body: MerchantCreate, _: Operator, bank: BankDep, request: Request) -> MerchantPublic:
    """Register a hospital, pharmacy or shop and whether it is designated."""
    merchant = await handlers.register_merchant(bank, body, correlation_id(request))
    return MerchantPublic(**merchant.model_dump())


@merchants.get("")
async def list_merchants(_: Staff, bank: BankDep) -> MerchantsPublic:
    """List the registered merchants."""
    docs = await bank.registered_merchants()
    return MerchantsPublic(data=[MerchantPublic(**d) for d in docs], count=len(docs))


@pos.post("/authorisations", responses=errors(409, 422))
async def authorise_purchase(body: PosAuthorisationCreate, principal: Terminal, bank: BankDep,
                             request: Request) -> PosAuthorisationPublic:
    """Authorise a card payment at a POS; a refusal is an answer with its response code."""
    said = await handlers.authorise_purchase(bank, principal, body, correlation_id(request))
    return PosAuthorisationPublic(**asdict(said))


@pos.post("/balance-inquiries", responses=errors(409, 422))
async def inquire_balance(body: PosBalanceInquiryCreate, principal: Terminal, bank: BankDep,
                          request: Request) -> PosBalanceInquiryPublic:
    """Tell a card's balance at a designated merchant's POS, on the card password (refusals as for a purchase)."""
    said = await handlers.inquire_at_pos(bank, principal, body, correlation_id(request))
    return PosBalanceInquiryPublic(authorisation_id=said.authorisation_id, approved=said.approved,
                                   response_code=said.response_code, reason=said.reason,
                                   balance_fen=said.balance_after_fen)
