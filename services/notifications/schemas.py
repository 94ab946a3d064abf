"""API request and response models of the notifications service."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AnyHttpUrl, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from shared.ids import mask_mobile

from .domain import Message, Status
from .signing import secret_key

DeliveryStatus = Literal["pending", "delivered", "cancelled"]


def _masked_card(number: str | None) -> str | None:
    return f"****{number[-4:]}" if number else None


class StatusChangePublic(BaseModel):
    at: datetime
    status: Status
    note: str | None
    by: str | None = Field(description="The operator who made the change (a resend)")


class MessagePublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "message_id": "M3b1f9c2e7d6a4e0f8c5b2a19d7e6f4c3", "person_id": "P3f9a0c1d2e4b5a6c", "template": "fraud_alert",
        "urgent": True, "status": "pending", "attempts": 0, "last_error": None,
        "next_attempt_at": "2026-01-05T06:31:02Z", "created_at": "2026-01-05T06:30:01Z", "sent_at": None,
        "channel": "sms-simulator", "language": None, "text": None, "mobile": None, "card": "****2345",
        "cause_event_id": "0b8d6c1e-5f0a-4c55-9a43-7d2e1f3b9c10", "cause_type": "cn.medcard.bank.FraudAlertRaised.v1",
        "history": [
            {"at": "2026-01-05T06:30:31Z", "status": "failed", "note": "simulated gateway failure", "by": None},
            {"at": "2026-01-05T06:31:02Z", "status": "pending", "by": "operator",
             "note": "resent after 5 failed attempts; last error: simulated gateway failure"}],
    }]})
    message_id: str
    person_id: str
    template: str
    urgent: bool
    status: Status
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    sent_at: datetime | None
    channel: str | None
    language: str | None
    text: str | None = Field(description="The text as delivered (set once sent)")
    mobile: str | None = Field(description="Masked mobile number it went to")
    card: str | None = Field(description="Masked card number the message is about")
    cause_event_id: str
    cause_type: str
    history: list[StatusChangePublic] = Field(description="Every change of status after creation, oldest first")

    @classmethod
    def of(cls, m: Message) -> MessagePublic:
        return cls(**m.model_dump(exclude={"mobile", "card_number", "params", "correlation_id"}),
                   mobile=mask_mobile(m.mobile) if m.mobile else None, card=_masked_card(m.card_number))


class MessagesPublic(BaseModel):
    data: list[MessagePublic]
    count: int


class RecipientPublic(BaseModel):
    person_id: str
    name: str | None
    mobile: str | None = Field(description="Masked mobile number")
    language: str
    cards: dict[str, str] = Field(description="Card number -> active or cancelled")


class SmsFailuresUpdate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"count": 3}]})
    count: int = Field(ge=0, le=1000, description="How many of the next sends the simulator fails")


class SmsGatewayState(BaseModel):
    channel: str
    fail_next: int


class SmsPublic(BaseModel):
    message_id: str
    person_id: str
    mobile: str = Field(description="Masked mobile number")
    text: str
    urgent: bool
    sent_at: datetime

    @classmethod
    def of(cls, doc: dict[str, Any]) -> SmsPublic:
        return cls(message_id=doc["_id"], person_id=doc["person_id"], mobile=mask_mobile(doc["mobile"]),
                   text=doc["text"], urgent=doc["urgent"], sent_at=doc["sent_at"])


class SmsOutbox(BaseModel):
    data: list[SmsPublic]
    count: int


class WebhookCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"url": "https://claims.example.org/hooks/medcard", "event_types": ["CardLost", "MonthlyTransfer"]}]})
    url: AnyHttpUrl
    event_types: list[str] = Field(default_factory=list, max_length=100,
                                   description="CloudEvents type strings or event names; empty: every event")
    secret: str | None = Field(None, description="whsec_ + base64 of 16-64 bytes; generated when absent")

    @field_validator("secret")
    @classmethod
    def _usable_secret(cls, v: str | None) -> str | None:
        if v is not None:
            secret_key(v)
        return v


class WebhookPublic(BaseModel):
    webhook_id: str
    url: str
    event_types: list[str]
    created_at: datetime

    @classmethod
    def of(cls, doc: dict[str, Any]) -> WebhookPublic:
        return cls(webhook_id=doc["_id"], url=doc["url"], event_types=doc["event_types"],
                   created_at=doc["created_at"])


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="Shown once: verify the webhook-signature header with it")


class WebhooksPublic(BaseModel):
    data: list[WebhookPublic]
    count: int


class DeliveryAttempt(BaseModel):
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryPublic(BaseModel):
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
    data: list[DeliveryPublic]
    count: int


class ReplayRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"since": "2026-01-05T00:00:00Z", "until": "2026-01-06T00:00:00Z"}]})
    since: AwareDatetime
    until: AwareDatetime


class ReplayAccepted(BaseModel):
    enqueued: int
