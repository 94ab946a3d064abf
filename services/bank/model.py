"""The bank's state: one document per person (the personal medical account and its
cards) and one per registered merchant. Pure data, no I/O."""

from __future__ import annotations

from copy import copy
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field, computed_field, model_validator

from shared.card_state import CardState as SharedCardState
from shared.domain import NotFound
from shared.events.bank import MerchantKind

CardStatus = Literal["active", "lost", "cancelled"]
"""Whether the bank lets the card work: active, or stopped as lost or as cancelled. A card
moves only forward (active -> lost -> cancelled): a lost card cancelled by its replacement
is cancelled, and ``reported_lost`` remembers the loss."""


class CardState(BaseModel):
    number: str
    status: CardStatus = "active"
    reported_lost: bool = False
    """Set once the card is reported lost, never cleared: an attempt on it is answered "41"
    and raises a fraud alert, even after its replacement cancelled it."""
    blocked_at: datetime | None = None
    """When the bank stopped the card (loss applied or cancelled): the loss-report latency."""
    loss_pending_since: datetime | None = None
    """A loss report received under the nightly policy, applied when the business day ends."""

    @model_validator(mode="after")
    def _lost_is_reported(self) -> CardState:
        if self.status == "lost":  # also a document stored before reported_lost existed
            self.reported_lost = True
        return self


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
    business_date: date | None = None
    """The business date it was answered on (None: kept before the date was recorded)."""


class Account(BaseModel):
    """Everything the bank knows about one person: created by the first event about them;
    the personal medical account is open once ``account_id`` is set (first card issued)."""

    person_id: str
    name: str | None = None
    id_number_digest: str | None = None
    account_id: str | None = None
    balance_fen: int = 0
    current_card: str | None = None
    cards: list[CardState] = Field(default_factory=list)
    pin_hash: str | None = None
    pin_failures: int = 0
    pin_locked: bool = False
    contributions: list[Contribution] = Field(default_factory=list)
    ledger: list[LedgerEntry] = Field(default_factory=list)
    """The postings still held here: at a month end those dated before the closing month
    move to the ledger archive (``domain.move_archived``), so the document stays the size of
    a month or two of postings however long the account lives."""
    archived_before: date | None = None
    """Every posting moved out is dated before this day (the first day of the last month
    end's closing month): a statement that starts on or after it needs no archive."""
    archived_credits_fen: int = 0
    archived_debits_fen: int = 0
    """What the postings moved to the archive add up to, by kind (the ledger totals)."""
    receipts: list[Receipt] = Field(default_factory=list)
    pos_answers: list[PosAnswerRecord] = Field(default_factory=list)
    """The POS authorisations of the last ``authorisation.REPEAT_WINDOW``, by transaction."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def losses_pending(self) -> bool:
        """A loss report waits for the day's end (the nightly policy; indexed)."""
        return any(c.loss_pending_since is not None for c in self.cards)

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

    def clone(self) -> Account:
        """A copy to change while this one stays as it was, as ``model_copy(deep=True)``
        but cheaper: new lists, and new copies of the items the rules change in place (cards,
        contributions, receipts). Ledger entries and POS answers are never changed once
        made (only appended, or the list replaced), so the copy shares them."""
        acc = copy(self)
        fields = acc.__dict__  # as model_copy(update=...) sets them, without its overhead
        fields["cards"] = [copy(c) for c in self.cards]
        fields["contributions"] = [copy(c) for c in self.contributions]
        fields["ledger"] = list(self.ledger)
        fields["receipts"] = [copy(r) for r in self.receipts]
        fields["pos_answers"] = list(self.pos_answers)
        return acc

    def card(self, number: str) -> CardState:
        for card in self.cards:
            if card.number == number:
                return card
        raise NotFound(f"card {number} is not linked to a personal account of this bank")

    def has_card(self, number: str) -> bool:
        return any(card.number == number for card in self.cards)

    def shared_state(self, card: CardState) -> SharedCardState:
        """The card's state in the vocabulary every service shares: an active card whose
        password was never set is pending activation (the password belongs to the current card)."""
        if card.status == "active" and card.number == self.current_card and self.pin_hash is None:
            return "pending_activation"
        return card.status

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
