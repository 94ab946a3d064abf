"""Events of the bank service: accounts, card passwords, POS, stamps and transfers."""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar, Literal

from pydantic import Field

from .base import EventData, Personal

BalanceChannel = Literal["phone", "counter", "pos", "online"]
PasswordChannel = Literal["phone", "counter", "online"]
TxnKind = Literal["purchase", "cash_withdrawal", "transfer"]
PosKind = Literal["purchase", "cash_withdrawal", "transfer", "balance_inquiry"]
"""What a card is used for at a POS: a transaction, or a balance inquiry (with the password)."""
MerchantKind = Literal["hospital", "pharmacy", "shop"]


class _Bank(EventData):
    service: ClassVar[str] = "bank"


class MerchantRegistered(_Bank):
    merchant_id: str
    name: str
    kind: MerchantKind
    designated: bool


class AccountOpened(_Bank):
    person_id: Personal
    account_id: Personal
    card_number: Personal


class AccountMovedToCard(_Bank):
    person_id: Personal
    account_id: Personal
    old_card_number: Personal
    new_card_number: Personal
    balance_fen: int = Field(ge=0)


class CardBlocked(_Bank):
    """The bank stopped a card: from this event on, in the bank's order of events for the
    person, no purchase on it is authorised."""

    person_id: Personal
    card_number: Personal
    reason: Literal["lost", "cancelled"]
    blocked_at: datetime


class CardPasswordSet(_Bank):
    person_id: Personal
    card_number: Personal
    channel: PasswordChannel


class CardPasswordChanged(_Bank):
    person_id: Personal
    card_number: Personal
    channel: PasswordChannel


class CardPasswordLocked(_Bank):
    person_id: Personal
    card_number: Personal
    failures: int


class CardPasswordReset(_Bank):
    person_id: Personal
    card_number: Personal
    channel: Literal["counter"] = "counter"


class PurchaseAuthorised(_Bank):
    person_id: Personal
    card_number: Personal
    authorisation_id: str
    merchant_id: str
    amount_fen: int = Field(gt=0)
    balance_after_fen: int = Field(ge=0)
    business_date: date


class PurchaseDeclined(_Bank):
    person_id: Personal
    card_number: Personal
    authorisation_id: str
    merchant_id: str
    amount_fen: int
    kind: TxnKind
    reason_code: str = Field(description="ISO 8583-style response code, e.g. 41 lost card")
    reason: str
    business_date: date


class FraudAlertRaised(_Bank):
    person_id: Personal
    card_number: Personal
    authorisation_id: str
    merchant_id: str
    amount_fen: int = Field(description="The amount tried; 0 for a balance inquiry")
    attempted_at: datetime
    kind: PosKind = Field("purchase", description="What was tried with the lost card at the POS")


class BalanceInquired(_Bank):
    person_id: Personal
    card_number: Personal
    channel: BalanceChannel
    balance_fen: int


class BankStamped(_Bank):
    person_id: Personal
    card_number: Personal
    receipt_number: str
    branch: str
    seal: str
    processed_at: datetime
    business_date: date
    loss_reported: bool = Field(description="True when the stamp also reported the loss")


class MonthlyTransfer(_Bank):
    person_id: Personal
    account_id: Personal
    card_number: Personal
    month: str
    contribution_id: str
    amount_fen: int = Field(gt=0)
    balance_after_fen: int = Field(ge=0)


class ContributionHeld(_Bank):
    person_id: Personal
    contribution_id: str
    month: str
    amount_fen: int
    reason: str
