"""API request and response models of the notifications service."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import AnyHttpUrl, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from shared.card_state import STATE_DESCRIPTION, CardState
from shared.ids import mask_mobile

from .domain import Message, Status
from .signing import check_new_secret

DeliveryStatus = Literal["pending", "delivered", "cancelled"]
MESSAGE_EXAMPLE: dict[str, Any] = {
    "message_id": "M1b4e28ba2fa1411ea3b5f4c1d2e3f4a5", "person_id": "P3f9a0c1d2e4b5a6c", "template": "card_lost",
    "urgent": True, "status": "sent", "attempts": 1, "last_error": None, "next_attempt_at": None,
    "created_at": "2026-01-05T02:13:10Z", "sent_at": "2026-01-05T02:13:11Z", "business_date": "2026-01-05",
    "channel": "sms-simulator",
    "language": "en", "text": "[MedCard] Dear Wang Fang, your card ending 0018 was reported lost online on "
                              "2026-01-05. Loss voucher: V583920174625. Keep it for later enquiries.",
    "mobile": "138****8000", "card": "****0018", "cause_event_id": "5f0c6a1e-8d2b-4c1a-9e57-2b8f3c4d5e6f",
    "cause_type": "cn.medcard.cards.CardLost.v1",
    "history": [{"at": "2026-01-05T02:13:11Z", "status": "sent", "note": None, "by": None}],
}
SMS_EXAMPLE: dict[str, Any] = {
    "message_id": "M1b4e28ba2fa1411ea3b5f4c1d2e3f4a5", "person_id": "P3f9a0c1d2e4b5a6c", "mobile": "138****8000",
    "text": MESSAGE_EXAMPLE["text"], "urgent": True, "sent_at": "2026-01-05T02:13:11Z", "business_date": "2026-01-05",
}
WEBHOOK_EXAMPLE: dict[str, Any] = {
    "webhook_id": "wh_3f9a0c1d2e4b5a6c", "url": "https://claims.example.org/hooks/medcard",
    "event_types": ["cn.medcard.cards.CardLost.v1", "cn.medcard.bank.MonthlyTransfer.v1"],
    "created_at": "2026-01-05T08:00:00Z",
}
DELIVERY_EXAMPLE: dict[str, Any] = {
    "delivery_id": "D7d1c0f4e2b3a4c5d6e7f8091a2b3c4d5", "webhook_id": "wh_3f9a0c1d2e4b5a6c",
    "event_id": "5f0c6a1e-8d2b-4c1a-9e57-2b8f3c4d5e6f", "event_type": "cn.medcard.cards.CardLost.v1", "seq": 42,
    "reason": "event", "resend_of": None, "status": "delivered", "attempts": 2, "next_attempt_at": None,
    "last_status_code": 204, "last_error": None, "created_at": "2026-01-05T02:13:10Z",
    "delivered_at": "2026-01-05T02:13:13Z",
    "log": [{"at": "2026-01-05T02:13:10Z", "status_code": 503, "error": None, "duration_ms": 41},
            {"at": "2026-01-05T02:13:13Z", "status_code": 204, "error": None, "duration_ms": 38}],
}


BUSINESS_DATE = ("The business date the message tells of: its cause's (a loss report, a purchase, a stamp...), "
                 "else the business clock's when it was composed; the simulation moves it, real instants do not")


def _masked_card(number: str | None) -> str | None:
    return f"****{number[-4:]}" if number else None


class StatusChangePublic(BaseModel):
    at: datetime
    status: Status
    note: str | None
    by: str | None = Field(description="The operator who made the change (a resend)")


class MessagePublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [MESSAGE_EXAMPLE]})

    message_id: str
    person_id: str
    template: str
    urgent: bool
    status: Status
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime = Field(description="The real instant (UTC) the message was composed")
    sent_at: datetime | None = Field(description="The real instant (UTC) the channel accepted it")
    business_date: date | None = Field(description=BUSINESS_DATE)
    channel: str | None
    language: str | None
    text: str | None = Field(description="The text as delivered (set once sent)")
    mobile: str | None = Field(description="Masked mobile number it went to")
    card: str | None = Field(description="Masked card number the message is about")
    cause_event_id: str
    cause_type: str
    history: list[StatusChangePublic] = Field(description="Every change of status after creation, oldest first")

    @classmethod
    def of(cls, m: Message, *, staff_names: bool = True) -> MessagePublic:
        """The message as shown; ``staff_names=False`` (a cardholder's own listing) leaves
        out which operator changed it."""
        shown = cls(**m.model_dump(exclude={"mobile", "card_number", "params", "correlation_id"}),
                    mobile=mask_mobile(m.mobile) if m.mobile else None, card=_masked_card(m.card_number))
        if not staff_names:
            for change in shown.history:
                change.by = None
        return shown


class MessagesPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"data": [MESSAGE_EXAMPLE], "count": 1}]})

    data: list[MessagePublic]
    count: int


class RecipientCard(BaseModel):
    card_number: str
    state: CardState = Field(description=STATE_DESCRIPTION)


class RecipientPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "person_id": "P3f9a0c1d2e4b5a6c", "name": "Wang Fang", "mobile": "138****8000", "language": "zh",
        "cards": [{"card_number": "6216610000000000018", "state": "cancelled"},
                  {"card_number": "6216610000000000026", "state": "active"}]}]})

    person_id: str
    name: str | None
    mobile: str | None = Field(description="Masked mobile number")
    language: str
    cards: list[RecipientCard] = Field(description="Every card the person has held, in the order issued")


class SmsFailuresUpdate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"count": 3}]})
    count: int = Field(ge=0, le=1000, description="How many of the next sends the simulator fails")


class SmsGatewayState(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"channel": "sms-simulator", "fail_next": 3}]})

    channel: str
    fail_next: int


class SmsPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SMS_EXAMPLE]})

    message_id: str
    person_id: str
    mobile: str = Field(description="Masked mobile number")
    text: str
    urgent: bool
    sent_at: datetime = Field(description="The real instant (UTC) the gateway took the SMS")
    business_date: date | None = Field(description=BUSINESS_DATE)

    @classmethod
    def of(cls, doc: dict[str, Any]) -> SmsPublic:
        return cls(message_id=doc["message_id"], person_id=doc["person_id"], mobile=mask_mobile(doc["mobile"]),
                   text=doc["text"], urgent=doc["urgent"], sent_at=doc["sent_at"],
                   business_date=doc.get("business_date"))


class SmsOutbox(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"data": [SMS_EXAMPLE], "count": 1}]})

    data: list[SmsPublic]
    count: int


class WebhookCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"url": "https://claims.example.org/hooks/medcard", "event_types": ["CardLost", "MonthlyTransfer"]}]})
    url: AnyHttpUrl = Field(description="A public http(s) address: loopback, private, link-local and metadata "
                                        "addresses, and a user or password in the URL, are refused")
    event_types: list[str] = Field(default_factory=list, max_length=100,
                                   description="CloudEvents type strings or event names; empty: every event")
    secret: str | None = Field(None, description="whsec_ + base64 of 24-64 random bytes; generated when absent")

    @field_validator("secret")
    @classmethod
    def _usable_secret(cls, v: str | None) -> str | None:
        return check_new_secret(v) if v is not None else None


class WebhookPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [WEBHOOK_EXAMPLE]})

    webhook_id: str
    url: str
    event_types: list[str]
    created_at: datetime

    @classmethod
    def of(cls, doc: dict[str, Any]) -> WebhookPublic:
        return cls(webhook_id=doc["_id"], url=doc["url"], event_types=doc["event_types"],
                   created_at=doc["created_at"])


class WebhookCreated(WebhookPublic):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {**WEBHOOK_EXAMPLE, "secret": "whsec_MfKQ9r8GKYqrTFVFQ4YqUcPdA6hbTzZz"}]})

    secret: str = Field(description="Shown once: verify the webhook-signature header with it")


class WebhooksPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"data": [WEBHOOK_EXAMPLE], "count": 1}]})

    data: list[WebhookPublic]
    count: int


class DeliveryAttempt(BaseModel):
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [DELIVERY_EXAMPLE]})

    delivery_id: str
    webhook_id: str
    event_id: str
    event_type: str
    seq: int = Field(description="Position in the subscription's queue: delivered strictly in this order")
    reason: Literal["event", "resend", "replay"]
    resend_of: str | None
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    log: list[DeliveryAttempt] = Field(description="The first attempts, in order")

    @classmethod
    def of(cls, doc: dict[str, Any]) -> DeliveryPublic:
        return cls(delivery_id=doc["_id"], **{k: v for k, v in doc.items() if k != "_id" and k in cls.model_fields})


class DeliveriesPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"data": [DELIVERY_EXAMPLE], "count": 1}]})

    data: list[DeliveryPublic]
    count: int


class ReplayRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"since": "2026-01-05T00:00:00Z", "until": "2026-01-06T00:00:00Z"}]})
    since: AwareDatetime
    until: AwareDatetime


class ReplayAccepted(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"enqueued": 17}]})

    enqueued: int
