"""Account statements: personal-account payment records (credits) and consumption
records (debits) for a period of business dates, as data and as printable CSV."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from shared.domain import Invalid

from .model import Account, LedgerEntry

CSV_COLUMNS = ("business_date", "recorded_at", "type", "reference", "description", "card_number",
               "credit_fen", "debit_fen", "balance_fen")


class StatementLine(BaseModel):
    business_date: date
    recorded_at: datetime
    type: Literal["credit", "debit"]
    reference: str
    description: str
    card_number: str
    credit_fen: int
    debit_fen: int
    balance_fen: int


EXAMPLE: dict[str, Any] = {
    "person_id": "P3f9a0c1d2e4b5a6c", "account_id": "PMA-P3f9a0c1d2e4b5a6c",
    "from_date": "2026-01-01", "to_date": "2026-02-28", "opening_balance_fen": 0,
    "credits_fen": 12000, "debits_fen": 3550, "closing_balance_fen": 8450, "lines": [
        {"business_date": "2026-01-31", "recorded_at": "2026-02-02T01:00:04+00:00", "type": "credit",
         "reference": "C202601P3f9a0c1d2e4b5a6c", "description": "Monthly transfer, personal account share for 2026-01",
         "card_number": "6216610123456789012", "credit_fen": 12000, "debit_fen": 0, "balance_fen": 12000},
        {"business_date": "2026-02-03", "recorded_at": "2026-02-03T06:21:40+00:00", "type": "debit",
         "reference": "AU5d41402abc4b2a76", "description": "Purchase at Tongrentang Pharmacy, Wangfujing",
         "card_number": "6216610123456789012", "credit_fen": 0, "debit_fen": 3550, "balance_fen": 8450}]}


class Statement(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})

    person_id: str
    account_id: str
    from_date: date
    to_date: date
    opening_balance_fen: int
    credits_fen: int
    debits_fen: int
    closing_balance_fen: int
    lines: list[StatementLine]


def _signed(entry: LedgerEntry) -> int:
    return entry.amount_fen if entry.kind == "credit" else -entry.amount_fen


DEFAULT_START = ("Default: the last 12 months up to the end, from the day after the same date a year earlier "
                 "(a statement asked in January covers December)")


def default_start(end: date) -> date:
    """The first day of the 12 months that end on ``end``: the day after the same date a
    year earlier (28 February for a 29 February)."""
    if end.year == 1:
        return date.min
    year_before = end.replace(year=end.year - 1, day=28 if (end.month, end.day) == (2, 29) else end.day)
    return year_before + timedelta(days=1)


def build_statement(account: Account, start: date, end: date,
                    archived: list[LedgerEntry] | None = None) -> Statement:
    """Lines in business-date order (postings of one day in the order they happened),
    each with the running balance; opening balance = everything dated before ``start``.

    ``archived``: the account's postings in the ledger archive, oldest first (one also still
    in the account is counted once). None when not read: then the period must start on or
    after ``account.archived_before``, and the archive counts in the opening balance by
    the archived totals the account keeps."""
    if account.account_id is None:
        raise Invalid("no personal medical account is open for this person")
    if end < start:
        raise Invalid(f"the period ends ({end}) before it starts ({start})")
    if archived is None:
        if account.archived_before is not None and start < account.archived_before:
            raise ValueError(f"a statement from {start} needs the postings archived before {account.archived_before}")
        postings = account.ledger
        opening = account.archived_credits_fen - account.archived_debits_fen
    else:
        held = {e.reference for e in account.ledger}
        postings = [*(e for e in archived if e.reference not in held), *account.ledger]
        opening = 0
    opening += sum(_signed(e) for e in postings if e.business_date < start)
    balance, lines = opening, []
    for entry in sorted((e for e in postings if start <= e.business_date <= end),
                        key=lambda e: e.business_date):
        balance += _signed(entry)
        credit = entry.amount_fen if entry.kind == "credit" else 0
        lines.append(StatementLine(
            business_date=entry.business_date, recorded_at=entry.recorded_at, type=entry.kind,
            reference=entry.reference, description=entry.description, card_number=entry.card_number,
            credit_fen=credit, debit_fen=entry.amount_fen - credit, balance_fen=balance))
    return Statement(
        person_id=account.person_id, account_id=account.account_id, from_date=start, to_date=end,
        opening_balance_fen=opening, credits_fen=sum(line.credit_fen for line in lines),
        debits_fen=sum(line.debit_fen for line in lines), closing_balance_fen=balance, lines=lines)


def statement_csv(statement: Statement) -> str:
    """A printable statement: a header row, an opening row, one row per posting, a closing row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerow([statement.from_date, "", "opening", "", f"Opening balance, account {statement.account_id}",
                     "", "", "", statement.opening_balance_fen])
    for line in statement.lines:
        writer.writerow([line.business_date, line.recorded_at.isoformat(), line.type, line.reference,
                         line.description, line.card_number, line.credit_fen or "", line.debit_fen or "",
                         line.balance_fen])
    writer.writerow([statement.to_date, "", "closing", "", "Closing balance", "",
                     statement.credits_fen, statement.debits_fen, statement.closing_balance_fen])
    return out.getvalue()
