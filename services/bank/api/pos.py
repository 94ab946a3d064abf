"""The merchant registry, POS authorisation and the POS balance inquiry."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime

from fastapi import APIRouter, Depends, Request

from shared.auth import CurrentPrincipal, Principal, require_roles
from shared.domain import Forbidden
from shared.errors import errors
from shared.events.bank import PosKind
from shared.ids import new_id
from shared.security import VerifiedSecrets
from shared.service import correlation_id

from .. import domain
from ..authorisation import PosAnswer, PosRequest, answer, authorise, inquire, repeated, screen
from ..deps import Bank, BankDep
from ..domain import Decide
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
VERIFIED_PINS = VerifiedSecrets()
"""Right PINs already verified by argon2 in this process (see shared.security)."""


@merchants.post("", status_code=201, dependencies=[Depends(require_roles("operator"))], responses=errors(409, 422))
async def register_merchant(body: MerchantCreate, bank: BankDep, request: Request) -> MerchantPublic:
    """Register a hospital, pharmacy or shop and whether it is designated."""
    decide = domain.register_merchant(body.merchant_id, body.name, body.kind, body.designated)
    outcome = await bank.merchants.execute(body.merchant_id, decide, correlation_id=correlation_id(request))
    return MerchantPublic(**outcome.result.model_dump())


@merchants.get("", dependencies=[Depends(require_roles("operator", "teller", "clerk"))])
async def list_merchants(bank: BankDep) -> MerchantsPublic:
    """List the registered merchants."""
    fields = {"_id": 0, "merchant_id": 1, "name": 1, "kind": 1, "designated": 1}
    docs = await bank.merchants.collection.find({}, fields).sort("_id").to_list()
    return MerchantsPublic(data=[MerchantPublic(**d) for d in docs], count=len(docs))


@pos.post("/authorisations", dependencies=[Depends(require_roles("merchant", "operator"))],
          responses=errors(409, 422))
async def authorise_purchase(body: PosAuthorisationCreate, principal: CurrentPrincipal, bank: BankDep,
                             request: Request) -> PosAuthorisationPublic:
    """Authorise a card payment at a POS; a refusal is an answer with its response code."""
    swipe = pos_request(principal, body.card_number, body.merchant_id, body.amount_fen, body.kind,
                        transaction_id=body.transaction_id)
    return PosAuthorisationPublic(**asdict(await decide_swipe(bank, request, swipe, body.pin, authorise)))


@pos.post("/balance-inquiries", dependencies=[Depends(require_roles("merchant", "operator"))],
          responses=errors(409, 422))
async def inquire_balance(body: PosBalanceInquiryCreate, principal: CurrentPrincipal, bank: BankDep,
                          request: Request) -> PosBalanceInquiryPublic:
    """Tell a card's balance at a designated merchant's POS, on the card password (refusals as for a purchase)."""
    swipe = pos_request(principal, body.card_number, body.merchant_id, 0, "balance_inquiry")
    said = await decide_swipe(bank, request, swipe, body.pin, inquire)
    return PosBalanceInquiryPublic(authorisation_id=said.authorisation_id, approved=said.approved,
                                   response_code=said.response_code, reason=said.reason,
                                   balance_fen=said.balance_after_fen)


@dataclass(frozen=True)
class Swipe:
    """What a terminal sends, before the bank dates it with its business date."""

    card_number: str
    merchant_id: str
    amount_fen: int
    kind: PosKind
    authorisation_id: str
    at: datetime
    transaction_id: str | None

    def dated(self, business_date: date) -> PosRequest:
        return PosRequest(card_number=self.card_number, merchant_id=self.merchant_id, amount_fen=self.amount_fen,
                          kind=self.kind, authorisation_id=self.authorisation_id, at=self.at,
                          business_date=business_date, transaction_id=self.transaction_id)


def pos_request(principal: Principal, card_number: str, merchant_id: str, amount_fen: int, kind: PosKind, *,
                transaction_id: str | None = None) -> Swipe:
    """The swipe a terminal sends; a terminal speaks only for its own merchant (403)."""
    if principal.role == "merchant" and principal.sub != merchant_id:
        raise Forbidden(f"this terminal belongs to merchant {principal.sub}, not {merchant_id}")
    return Swipe(card_number=card_number, merchant_id=merchant_id, amount_fen=amount_fen, kind=kind,
                 authorisation_id=new_id("AU"), at=datetime.now(UTC), transaction_id=transaction_id)


async def decide_swipe(bank: Bank, request: Request, sent: Swipe, pin: str, rule: Callable[..., Decide]) -> PosAnswer:
    """Check the PIN (when it is what decides) and apply ``rule`` (authorise or inquire) to the account.

    The reads that do not depend on one another go out together: the business date, the
    merchant and the account (the card's person and a registered merchant are remembered
    once read: neither ever changes). Then one guarded write saves the answer."""
    person_id = await bank.person_of_card(sent.card_number)
    if person_id is None:
        return answer(sent.dated(bank.clock.today()), "14")  # nothing is recorded: the date is not used
    business_date, merchant, doc = await asyncio.gather(
        bank.clock.current(), bank.merchant(sent.merchant_id), bank.accounts.get_doc(person_id))
    swipe = sent.dated(business_date)
    account = bank.accounts.state_of(doc)
    # argon2 runs off the event loop, and only when the PIN is what decides (not for a repeat).
    fresh = account is not None and repeated(account, swipe) is None
    checked = account.pin_hash if account and fresh and screen(account, swipe, merchant) is None else None
    pin_ok = checked is not None and await VERIFIED_PINS.verify(checked, pin)
    decide = rule(swipe, merchant, checked_hash=checked, pin_ok=pin_ok,
                  max_failures=bank.runtime.settings.pin_max_failures)
    outcome = await bank.accounts.execute(person_id, decide, correlation_id=correlation_id(request), loaded=doc,
                                          loaded_state=account)
    return outcome.result  # type: ignore[no-any-return]
