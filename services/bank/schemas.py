"""Request and response models of the bank's HTTP API, named by role."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.card_state import STATE_DESCRIPTION, CardState
from shared.events.bank import BalanceChannel, MerchantKind, PasswordChannel, TxnKind
from shared.ids import IdNumber
from shared.money import FenAmount
from shared.text import Text

from .statement import DEFAULT_START

# [0-9], never \d: pydantic's patterns are Unicode-aware, and \d also takes fullwidth digits.
Pin = Annotated[str, Field(pattern=r"^[0-9]{6}$", description="The card password: 6 ASCII digits",
                           examples=["246810"])]
CardNumber = Annotated[str, Field(pattern=r"^[0-9]{12,19}$", examples=["6216610123456789012"])]
Reference = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class MerchantCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"merchant_id": "M-PH-0001", "name": "Tongrentang Pharmacy, Wangfujing", "kind": "pharmacy",
         "designated": True}]})

    merchant_id: Reference
    name: Annotated[str, Text(200)]
    kind: MerchantKind
    designated: bool


class MerchantPublic(MerchantCreate):
    """A registered merchant, as the registry shows it."""


class MerchantsPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"count": 2, "data": [
        {"merchant_id": "M-PH-0001", "name": "Tongrentang Pharmacy, Wangfujing", "kind": "pharmacy",
         "designated": True},
        {"merchant_id": "M-SH-0001", "name": "Xidan Department Store", "kind": "shop", "designated": False}]}]})

    data: list[MerchantPublic]
    count: int


class PosAuthorisationCreate(BaseModel):
    """What the terminal sends: the password travels only here and is never stored or logged."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"card_number": "6216610123456789012", "pin": "246810", "merchant_id": "M-PH-0001", "amount_fen": 3550,
         "kind": "purchase", "transaction_id": "T20260105-000417"}]})

    card_number: CardNumber
    pin: Pin
    merchant_id: Reference
    amount_fen: FenAmount
    kind: TxnKind = "purchase"
    transaction_id: Reference = Field(description=(
        "The terminal's own number of this transaction, unique per merchant: a resend with the same number "
        "(after a timeout) gets the first answer and is never debited again"))


class PosAuthorisationPublic(BaseModel):
    """The POS answer: a decline is an answer (approved=false and its response code)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"authorisation_id": "AU5d41402abc4b2a76", "approved": False, "response_code": "41",
         "reason": "lost card, pick up", "balance_after_fen": None}]})

    authorisation_id: str
    approved: bool
    response_code: str = Field(description="ISO 8583-style: 00 approved, 41 lost card, 51 insufficient funds...")
    reason: str
    balance_after_fen: int | None = None


class PosBalanceInquiryCreate(BaseModel):
    """A balance inquiry from the terminal: it needs the card password, like a purchase."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"card_number": "6216610123456789012", "pin": "246810", "merchant_id": "M-PH-0001"}]})

    card_number: CardNumber
    pin: Pin
    merchant_id: Reference


class PosBalanceInquiryPublic(BaseModel):
    """The POS answer to a balance inquiry: the balance when approved, else the refusal's code."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"authorisation_id": "AU7b1e4c0d9a2f3e58", "approved": True, "response_code": "00", "reason": "approved",
         "balance_fen": 8450},
        {"authorisation_id": "AU0c9d8e7f6a5b4c3d", "approved": False, "response_code": "55",
         "reason": "incorrect PIN", "balance_fen": None}]})

    authorisation_id: str
    approved: bool
    response_code: str = Field(description="ISO 8583-style: 00 answered, 41 lost card, 55 incorrect PIN...")
    reason: str
    balance_fen: int | None = None


class PasswordSet(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"pin": "246810"}, {"pin": "246810", "channel": "counter", "id_number": "110105198005170420"}]})

    pin: Pin
    channel: PasswordChannel | None = Field(None, description="Default: counter for a teller, online for the holder")
    id_number: str | None = Field(None, min_length=1, max_length=40,
                                  description="A teller only, and required: as read from the holder's ID card "
                                              "(only its digest is compared)")


class PasswordChange(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"old_pin": "246810", "new_pin": "135790", "channel": "phone"},
        {"old_pin": "246810", "new_pin": "135790", "channel": "counter", "id_number": "110105198005170420"}]})

    old_pin: Pin
    new_pin: Pin
    channel: PasswordChannel | None = Field(None, description="Default: counter for a teller, online for the holder")
    id_number: IdNumber | None = Field(None, description=(
        "Required from a teller: the holder brings the ID card to the counter (document 004), and its number "
        "must be the cardholder's (403 otherwise); only its digest is compared"))


class CounterStatement(BaseModel):
    """A statement asked for at the counter, on the holder's ID card."""

    model_config = ConfigDict(populate_by_name=True, json_schema_extra={"examples": [
        {"id_number": "110105198005170420", "from": "2026-01-01", "to": "2026-06-30", "format": "json"}]})

    id_number: Annotated[IdNumber, Field(description="As read from the ID card; only its digest is compared")]
    start: date | None = Field(None, alias="from", description=DEFAULT_START)
    end: date | None = Field(None, alias="to", description="Default: the business date")
    output: Literal["json", "csv"] = Field("json", alias="format")


class PasswordReset(BaseModel):
    """A teller resets a forgotten or locked password on the holder's ID card."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"id_number": "110105198005170420", "new_pin": "135790"}]})

    id_number: Annotated[IdNumber, Field(description="As read from the ID card; only its digest is compared")]
    new_pin: Pin


class PasswordPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"card_number": "6216610123456789012", "password_set": True, "locked": False}]})

    card_number: str
    password_set: bool
    locked: bool


class BalancePublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"card_number": "6216610123456789012", "balance_fen": 8450, "channel": "phone"}]})

    card_number: str
    balance_fen: int
    channel: BalanceChannel


class StampCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"receipt_number": "R202601050001", "branch": "BOC Savings Office, Xidan", "seal": "BOC-XD-0420"}]})

    receipt_number: Reference
    branch: Annotated[str, Text(200)]
    seal: Annotated[str, Text(64, description="The branch's business seal")]


class StampPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "person_id": "P3f9a0c1d2e4b5a6c", "card_number": "6216610123456789012", "receipt_number": "R202601050001",
        "branch": "BOC Savings Office, Xidan", "seal": "BOC-XD-0420", "processed_at": "2026-01-05T02:41:17Z",
        "business_date": "2026-01-05", "loss_reported": False}]})

    person_id: str
    card_number: str
    receipt_number: str
    branch: str
    seal: str
    processed_at: datetime = Field(description="The real instant (UTC) the teller stamped the receipt: the "
                                               "processing time on the seal; its business date is business_date")
    business_date: date = Field(description="The business date of the stamp (the business clock's, which the "
                                            "simulation moves): the replacement's ready_on counts from it")
    loss_reported: bool = Field(description="True when the stamp also reported the card lost")


class CardPublic(BaseModel):
    card_number: str
    state: CardState = Field(description=STATE_DESCRIPTION)
    blocked_at: datetime | None = Field(None, description="When the bank stopped the card (loss or cancellation)")


class ContributionPublic(BaseModel):
    person_id: str
    contribution_id: str
    month: str
    amount_fen: int


class AccountPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "person_id": "P3f9a0c1d2e4b5a6c", "account_id": "PMA-P3f9a0c1d2e4b5a6c", "balance_fen": 8450,
        "current_card": "6216610123456789012",
        "cards": [{"card_number": "6216610000000000018", "state": "cancelled",
                   "blocked_at": "2026-01-05T02:13:09Z"},
                  {"card_number": "6216610123456789012", "state": "active", "blocked_at": None}],
        "password_set": True, "password_locked": False, "pending_contributions": []}]})

    person_id: str
    account_id: str
    balance_fen: int
    current_card: str | None
    cards: list[CardPublic]
    password_set: bool
    password_locked: bool
    pending_contributions: list[ContributionPublic] = Field(description="Paid, to be credited at a month end")


class HeldContributionsPublic(BaseModel):
    """Contributions paid for persons who have no personal account yet."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"count": 1, "data": [
        {"person_id": "P7c2e9b0a1d3f4e5b", "contribution_id": "C202601P7c2e9b0a1d3f4e5b", "month": "2026-01",
         "amount_fen": 12850}]}]})

    data: list[ContributionPublic]
    count: int


class LedgerTotalsPublic(BaseModel):
    """The money invariant: balance_fen == credits_fen - debits_fen across all accounts."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"balance_fen": 845000, "credits_fen": 1285000, "debits_fen": 440000}]})

    balance_fen: int
    credits_fen: int
    debits_fen: int
