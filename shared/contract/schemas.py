"""One JSON Schema (draft 2020-12) per event type: the payload an external consumer reads.

The schema is the pydantic validation schema of the payload model with three changes
for readers: a title and a description of the event, the sensitive-field
classification as ``x-sensitive``, and no ``additionalProperties: false``: consumers
must ignore fields they do not know, so adding an optional field never breaks them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from shared.events import REGISTRY, EventData

DRAFT = "https://json-schema.org/draft/2020-12/schema"

DESCRIPTIONS: dict[str, str] = {
    "InsuredUnitRegistered": "An employer (insured unit) was registered with the agency.",
    "PersonRegistered": "An insured person was registered: name, masked ID number, mobile phone, employer.",
    "OnlineAccountOpened": "A person opened an online account after identity verification.",
    "OnlineAccountLocked": "An online account was locked after too many failed logins.",
    "OnlineAccountCodeIssued": "A one-time code was issued for the person's registered mobile (sealed: only the SMS "
                               "channel opens it).",
    "OnlineAccountClosed": "An online account was closed at the agency counter on the holder's ID card.",
    "StaffUserCreated": "A staff user (clerk, teller, operator) or a POS merchant user was created.",
    "ContributionPaid": "An insured unit paid a month's contribution; amount_fen is the personal-account share.",
    "BusinessDateAdvanced": "The simulated business date moved forward by one day.",
    "MonthEnded": "A business month ended: its monthly transfers are due.",
    "CardIssued": "A card was issued to a person; with replaces, it is the new card handed out for a replaced one.",
    "CardActivated": "A card was activated for use.",
    "CardLost": "A card was reported lost (online or at the bank); voucher is the loss confirmation number.",
    "ReplacementRequested": "A replacement card was applied for at the agency counter; a receipt was given.",
    "ReplacementProductionStarted": "The bank stamped the receipt: the new card is produced, ready on ready_on.",
    "ReplacementReady": "The new card is ready for collection at pickup_location with documents_required.",
    "CardCancelled": "A card was cancelled (replaced or closed); it is never active again.",
    "MerchantRegistered": "A hospital, pharmacy or shop POS merchant was registered; designated ones accept the card.",
    "AccountOpened": "The agent bank opened the personal medical account linked to a card.",
    "AccountMovedToCard": "The personal account and its balance moved from a replaced card to the new card.",
    "CardPasswordSet": "The card password was set for the first time.",
    "CardPasswordChanged": "The card password was changed with the old password.",
    "CardPasswordLocked": "Too many wrong passwords in a row: the card is locked for POS use until reset.",
    "CardPasswordReset": "A forgotten password was reported at the bank counter and reset.",
    "PurchaseAuthorised": "A POS purchase was authorised and debited from the personal account.",
    "PurchaseDeclined": "A POS transaction was refused; reason_code says why (ISO 8583 style).",
    "FraudAlertRaised": "Someone tried to use a card reported lost: the cardholder must be warned urgently.",
    "BalanceInquired": "A balance inquiry was answered; the channel is recorded.",
    "BankStamped": "The bank stamped a replacement receipt with its seal and the processing time.",
    "MonthlyTransfer": "The monthly personal-account share was credited to the account (once per person and month).",
    "ContributionHeld": "A contribution could not be credited (e.g. no account); reason says why.",
    "NotificationSent": "A message was delivered to a cardholder.",
    "NotificationFailed": "A message could not be delivered after every attempt.",
}


def describe(cls: type[BaseModel]) -> str:
    """The event's own docstring, else the catalogue's sentence, else a generic one."""
    doc = cls.__dict__.get("__doc__")
    if doc:
        return " ".join(doc.split())
    return DESCRIPTIONS.get(cls.__name__, f"The {cls.__name__} event.")


def _strip_closed(schema: Any) -> Any:
    """Drop ``additionalProperties: false`` everywhere (tolerant readers)."""
    if isinstance(schema, dict):
        return {k: _strip_closed(v) for k, v in schema.items() if not (k == "additionalProperties" and v is False)}
    if isinstance(schema, list):
        return [_strip_closed(v) for v in schema]
    return schema


def _inline_refs(schema: Any, defs: dict[str, Any]) -> Any:
    """Replace local ``#/$defs/X`` references by their definition (event payloads are not recursive)."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline_refs(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline_refs(v, defs) for v in schema]
    return schema


def payload_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The published JSON Schema of a payload model: self-contained and open to new fields."""
    raw = model.model_json_schema()
    return _strip_closed(_inline_refs(raw, raw.get("$defs", {})))  # type: ignore[no-any-return]


def event_schema(event_type: str, cls: type[EventData]) -> dict[str, Any]:
    """The schema file of one event type: draft, identity, description, classification, payload."""
    body = payload_schema(cls)
    body.pop("title", None)
    return {
        "$schema": DRAFT,
        "title": cls.__name__,
        "description": describe(cls),
        "x-event-type": event_type,
        "x-service": cls.service,
        "x-version": cls.version,
        "x-sensitive": list(cls.sensitive),
        **body,
    }


def all_event_schemas() -> dict[str, dict[str, Any]]:
    """Every registered event type's schema, by CloudEvents type string (sorted)."""
    return {t: event_schema(t, REGISTRY[t]) for t in sorted(REGISTRY)}
