"""Personal accounts and statements, held contributions, and the money totals."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from shared.errors import errors

from .. import handlers
from ..deps import BankDep, CardholderRole, HolderOrStaff, Operator, Teller, TellerOrOperator
from ..schemas import (
    AccountPublic,
    CardPublic,
    ContributionPublic,
    CounterStatement,
    HeldContributionsPublic,
    LedgerTotalsPublic,
)
from ..statement import DEFAULT_START, EXAMPLE, Statement, statement_csv

router = APIRouter(prefix="/v1", tags=["accounts"], responses=errors(401, 403))


@router.get("/accounts/{person_id}", responses=errors(404, 422))
async def get_account(person_id: str, principal: HolderOrStaff, bank: BankDep) -> AccountPublic:
    """A personal medical account: balance, cards, password state, contributions awaiting month end."""
    account = await handlers.account_of(bank, principal, person_id)
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


@router.get("/accounts/{person_id}/statement", response_model=Statement, responses=STATEMENT_RESPONSES)
async def get_statement(
    person_id: str, principal: CardholderRole, bank: BankDep,
    start: Annotated[date | None, Query(alias="from", description=DEFAULT_START)] = None,
    end: Annotated[date | None, Query(alias="to", description="Default: the business date")] = None,
    output: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> Statement | Response:
    """The holder's own statement, online: credits (monthly transfers) and debits (purchases)
    for a period of business dates. At the counter a teller asks with the ID card (POST)."""
    return statement_answer(await handlers.holder_statement(bank, principal, person_id, start, end), output)


@router.post("/accounts/{person_id}/statement", response_model=Statement,
             responses={**STATEMENT_RESPONSES, **errors(409)})
async def counter_statement(person_id: str, body: CounterStatement, _: Teller, bank: BankDep) -> Statement | Response:
    """A statement printed at the counter on the holder's ID card (its number must be the
    cardholder's: 403 otherwise; it travels in the body, never in a URL)."""
    return statement_answer(await handlers.counter_statement(bank, person_id, body), body.output)


def statement_answer(statement: Statement, output: Literal["json", "csv"]) -> Statement | Response:
    if output == "json":
        return statement
    filename = f"statement-{statement.account_id}-{statement.from_date}-{statement.to_date}.csv"
    return Response(statement_csv(statement), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/contributions/held")
async def held_contributions(_: TellerOrOperator, bank: BankDep) -> HeldContributionsPublic:
    """Contributions paid for persons without a personal account yet (credited once one opens)."""
    data = [ContributionPublic(**c) for c in await bank.held_contributions()]
    return HeldContributionsPublic(data=data, count=len(data))


@router.get("/ledger/totals")
async def ledger_totals(_: Operator, bank: BankDep) -> LedgerTotalsPublic:
    """Sum of all balances, credits and debits: the balance equals credits minus debits."""
    balance, credits, debits = await bank.ledger_totals()
    return LedgerTotalsPublic(balance_fen=balance, credits_fen=credits, debits_fen=debits)
