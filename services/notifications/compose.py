"""Which events a cardholder hears about, and with which template and parameters.

Pure: an event payload in, a draft (or nothing) out. Card numbers appear only as
their last four digits, amounts in yuan, instants in China time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from shared.events import (
    BankStamped,
    CardIssued,
    CardLost,
    CardPasswordChanged,
    CardPasswordLocked,
    CardPasswordReset,
    EventData,
    FraudAlertRaised,
    MonthlyTransfer,
    OnlineAccountCodeIssued,
    PurchaseAuthorised,
    PurchaseDeclined,
    ReplacementReady,
    ReplacementRequested,
)

CHINA = timezone(timedelta(hours=8))
SEALED_CODE = "code_sealed"
"""A parameter holding a one-time code sealed by identity: opened only to send the SMS;
the text kept with the message shows ``MASKED_CODE`` instead."""
MASKED_CODE = "******"
LOST_CARD = "41"
"""The bank's response code for a card reported lost: the same decision always raises
FraudAlertRaised too, whose urgent message tells the cardholder instead of a refusal."""


@dataclass(frozen=True)
class Draft:
    """A message to compose: its template, neutral parameters, urgency and card."""

    person_id: str
    template: str
    card_number: str | None
    params: dict[str, Any] = field(default_factory=dict)
    urgent: bool = False


def last4(card_number: str) -> str:
    return card_number[-4:]


def yuan(fen: int) -> str:
    """Integer fen as yuan with two decimals and thousands separators: 123456 -> 1,234.56."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100:,}.{fen % 100:02d}"


def china_time(instant: datetime) -> str:
    return instant.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")


def draft_for(data: EventData, merchant_name: str | None = None) -> Draft | None:
    """The message an event yields for its cardholder, or None if they need not hear of it."""
    merchant = merchant_name or getattr(data, "merchant_id", "")
    match data:
        case OnlineAccountCodeIssued():
            return Draft(data.person_id, "account_code", None, {
                SEALED_CODE: data.code_sealed, "until": china_time(data.expires_at)}, urgent=True)
        case CardLost():
            return Draft(data.person_id, "card_lost", data.card_number, {
                "card": last4(data.card_number), "voucher": data.voucher, "channel": data.channel,
                "date": data.business_date.isoformat()})
        case ReplacementRequested():
            return Draft(data.person_id, "replacement_requested", data.card_number, {
                "card": last4(data.card_number), "receipt": data.receipt_number})
        case BankStamped():
            return Draft(data.person_id, "bank_stamped", data.card_number, {
                "receipt": data.receipt_number, "branch": data.branch, "processed_at": china_time(data.processed_at)})
        case ReplacementReady():
            return Draft(data.person_id, "replacement_ready", data.card_number, {
                "receipt": data.receipt_number, "ready_on": data.ready_on.isoformat(),
                "location": data.pickup_location, "documents": list(data.documents_required)})
        case CardIssued(replaces=str(old)):
            return Draft(data.person_id, "card_handed_out", data.card_number, {
                "card": last4(data.card_number), "old_card": last4(old)})
        case MonthlyTransfer():
            return Draft(data.person_id, "monthly_transfer", data.card_number, {
                "card": last4(data.card_number), "month": data.month, "amount": yuan(data.amount_fen),
                "balance": yuan(data.balance_after_fen)})
        case PurchaseAuthorised():
            return Draft(data.person_id, "purchase_authorised", data.card_number, {
                "card": last4(data.card_number), "merchant": merchant, "amount": yuan(data.amount_fen),
                "balance": yuan(data.balance_after_fen), "date": data.business_date.isoformat()})
        case PurchaseDeclined(reason_code=code) if code != LOST_CARD:
            return Draft(data.person_id, "purchase_declined", data.card_number, {
                "card": last4(data.card_number), "merchant": merchant, "amount": yuan(data.amount_fen),
                "date": data.business_date.isoformat(), "reason": [data.reason_code, data.reason]})
        case FraudAlertRaised() if data.kind == "balance_inquiry":
            return Draft(data.person_id, "fraud_alert_balance", data.card_number, {
                "card": last4(data.card_number), "merchant": merchant,
                "attempted_at": china_time(data.attempted_at)}, urgent=True)
        case FraudAlertRaised():
            return Draft(data.person_id, "fraud_alert", data.card_number, {
                "card": last4(data.card_number), "merchant": merchant, "amount": yuan(data.amount_fen),
                "attempted_at": china_time(data.attempted_at)}, urgent=True)
        case CardPasswordChanged():
            return Draft(data.person_id, "password_changed", data.card_number, {
                "card": last4(data.card_number), "channel": data.channel})
        case CardPasswordLocked():
            return Draft(data.person_id, "password_locked", data.card_number, {
                "card": last4(data.card_number), "failures": str(data.failures)})
        case CardPasswordReset():
            return Draft(data.person_id, "password_reset", data.card_number, {"card": last4(data.card_number)})
    return None
