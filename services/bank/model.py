"""The bank's state: one document per person (the personal medical account and its
cards) and one per registered merchant. Pure data, no I/O."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, computed_field

from shared.errors import NotFound
from shared.events.bank import MerchantKind

CardStatus = Literal["active", "lost", "cancelled"]
"""``lost`` is final: a lost card later cancelled by its replacement stays ``lost``, so an
attempt on it is still answered "41" and raises a fraud alert."""


class CardState(BaseModel):
    number: str
    status: CardStatus = "active"
    blocked_at: datetime | None = None
    """When the bank stopped the card (loss applied or cancelled): the loss-report latency."""


class Contribution(BaseModel):
    """A personal-account share paid by the insured unit, credited at a month end."""

    contribution_id: str
    month: str
    amount_fen: int
    credited: bool = False


class LedgerEntry(BaseModel):
    """One posting: a monthly transfer (credit) or an authorised purchase (debit)."""

    reference: str
    kind: Literal["credit", "debit"]
    amount_fen: int
    business_date: date
    recorded_at: datetime
    card_number: str
    description: str


class Stamp(BaseModel):
    branch: str
    seal: str
    processed_at: datetime
    business_date: date
    loss_reported: bool


class Receipt(BaseModel):
    """A replacement receipt the agency issued (ReplacementRequested), later stamped here."""

    receipt_number: str
    card_number: str
    requested_on: date
    stamp: Stamp | None = None


class PosAnswerRecord(BaseModel):
    """A POS authorisation as answered, kept so that a terminal's resend of the same
    transaction gets the same answer (and no second debit): see ``authorisation.repeated``."""

    key: str
    """The terminal's merchant and transaction id: ``<merchant_id>/<transaction_id>``."""
    request: str
    """What was asked (card, amount, kind): a transaction id reused for another request is refused."""
    authorisation_id: str
    approved: bool
    response_code: str
    reason: str
    balance_after_fen: int | None
    answered_at: datetime


class Account(BaseModel):
    """Everything the bank knows about one person: created by the first event about them;
    the personal medical account is open once ``account_id`` is set (first card issued)."""

    person_id: str
    name: str | None = None
    id_number_digest: str | None = None
    account_id: str | None = None
    balance_fen: int = 0
    current_card: str | None = None
    cards: list[CardState] = []
    pin_hash: str | None = None
    pin_failures: int = 0
    pin_locked: bool = False
    contributions: list[Contribution] = []
    ledger: list[LedgerEntry] = []
    receipts: list[Receipt] = []
    pos_answers: list[PosAnswerRecord] = []
    """The POS authorisations of the last ``authorisation.REPEAT_WINDOW``, by transaction."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def credit_due_from(self) -> str | None:
        """Oldest month with an uncredited contribution of an open account (indexed: month end)."""
        months = [c.month for c in self.contributions if not c.credited]
        return min(months) if months and self.account_id else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def held(self) -> bool:
        """Contributions are waiting for an account to be opened (indexed: the held list)."""
        return self.account_id is None and bool(self.contributions)

    def card(self, number: str) -> CardState:
        for card in self.cards:
            if card.number == number:
                return card
        raise NotFound(f"card {number} is not linked to a personal account of this bank")

    def has_card(self, number: str) -> bool:
        return any(card.number == number for card in self.cards)

    def receipt(self, number: str) -> Receipt:
        for receipt in self.receipts:
            if receipt.receipt_number == number:
                return receipt
        raise NotFound(f"replacement receipt {number} is unknown to the bank")


class Merchant(BaseModel):
    """A POS terminal's owner: only designated hospitals and pharmacies may take the card."""

    merchant_id: str
    name: str
    kind: MerchantKind
    designated: bool
