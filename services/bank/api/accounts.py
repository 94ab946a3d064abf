"""Personal accounts and statements, held contributions, and the money totals."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response

from shared.auth import CurrentPrincipal, ensure_owner_or_staff, require_roles
from shared.errors import errors

from shared.ids import id_digest

from ..domain import check_id_card
from ..model import Account
from ..schemas import (
    AccountPublic,
    CardPublic,
    ContributionPublic,
    CounterStatement,
    HeldContributionsPublic,
    LedgerTotalsPublic,
)
from ..statement import DEFAULT_START, EXAMPLE, Statement, build_statement, default_start, statement_csv
from ..deps import Bank, BankDep

router = APIRouter(prefix="/v1", tags=["accounts"], responses=errors(401, 403))


@router.get("/accounts/{person_id}", dependencies=[Depends(require_roles("cardholder", "teller", "operator"))],
            responses=errors(404, 422))
async def get_account(person_id: str, principal: CurrentPrincipal, bank: BankDep) -> AccountPublic:
    """A personal medical account: balance, cards, password state, contributions awaiting month end."""
    ensure_owner_or_staff(principal, person_id, "teller", "operator")
    account = await bank.open_account(person_id)
    pending = [ContributionPublic(person_id=person_id, **c.model_dump(exclude={"credited"}))
               for c in account.contributions if not c.credited]
    return AccountPublic(
        person_id=person_id, account_id=account.account_id or "", balance_fen=account.balance_fen,
        current_card=account.current_card,
        cards=[CardPublic(card_number=c.number, state=account.shared_state(c), blocked_at=c.blocked_at)
               for c in account.cards],
        password_set=account.pin_hash is not None, password_locked=account.pin_locked,
        pending_contributions=pending)


STATEMENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"example": statement_csv(Statement.model_validate(EXAMPLE))}},
          "description": "JSON, or CSV with format=csv"},
    **errors(404, 422),
}


@router.get("/accounts/{person_id}/statement", response_model=Statement,
            dependencies=[Depends(require_roles("cardholder"))], responses=STATEMENT_RESPONSES)
async def get_statement(
    person_id: str, principal: CurrentPrincipal, bank: BankDep,
    start: Annotated[date | None, Query(alias="from", description=DEFAULT_START)] = None,
    end: Annotated[date | None, Query(alias="to", description="Default: the business date")] = None,
    output: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> Statement | Response:
    """The holder's own statement, online: credits (monthly transfers) and debits (purchases)
    for a period of business dates. At the counter a teller asks with the ID card (POST)."""
    ensure_owner_or_staff(principal, person_id)
    return statement_answer(await bank.open_account(person_id), bank, start, end, output)


@router.post("/accounts/{person_id}/statement", response_model=Statement,
             dependencies=[Depends(require_roles("teller"))], responses={**STATEMENT_RESPONSES, **errors(409)})
async def counter_statement(person_id: str, body: CounterStatement, bank: BankDep) -> Statement | Response:
    """A statement printed at the counter on the holder's ID card (its number must be the
    cardholder's: 403 otherwise; it travels in the body, never in a URL)."""
    account = await bank.open_account(person_id)
    check_id_card(account, id_digest(bank.runtime.settings.id_digest_key, body.id_number))
    return statement_answer(account, bank, body.start, body.end, body.output)


def statement_answer(account: Account, bank: Bank, start: date | None, end: date | None,
                     output: Literal["json", "csv"]) -> Statement | Response:
    end = end or bank.clock.today()
    statement = build_statement(account, start or default_start(end), end)
    if output == "json":
        return statement
    filename = f"statement-{statement.account_id}-{statement.from_date}-{statement.to_date}.csv"
    return Response(statement_csv(statement), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/contributions/held", dependencies=[Depends(require_roles("teller", "operator"))])
async def held_contributions(bank: BankDep) -> HeldContributionsPublic:
    """Contributions paid for persons without a personal account yet (credited once one opens)."""
    docs = await bank.accounts.collection.find({"held": True}, {"contributions": 1}).sort("_id").to_list()
    data = [ContributionPublic(person_id=d["_id"], **{k: c[k] for k in ("contribution_id", "month", "amount_fen")})
            for d in docs for c in d["contributions"]]
    return HeldContributionsPublic(data=data, count=len(data))


@router.get("/ledger/totals", dependencies=[Depends(require_roles("operator"))])
async def ledger_totals(bank: BankDep) -> LedgerTotalsPublic:
    """Sum of all balances, credits and debits: the balance equals credits minus debits."""
    coll = bank.accounts.collection
    balances = await (await coll.aggregate([{"$group": {"_id": None, "sum": {"$sum": "$balance_fen"}}}])).to_list()
    postings = await (await coll.aggregate([
        {"$unwind": "$ledger"}, {"$group": {"_id": "$ledger.kind", "sum": {"$sum": "$ledger.amount_fen"}}},
    ])).to_list()
    by_kind = {p["_id"]: p["sum"] for p in postings}
    return LedgerTotalsPublic(balance_fen=balances[0]["sum"] if balances else 0,
                              credits_fen=by_kind.get("credit", 0), debits_fen=by_kind.get("debit", 0))
