"""Events of the notifications service: deliveries to cardholders."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from .base import EventData

_CARD = Field(None, description="The card the message is about, if any (also the CloudEvents subject)")


class _Notifications(EventData):
    service: ClassVar[str] = "notifications"


class NotificationSent(_Notifications):
    person_id: str
    message_id: str
    template: str
    channel: str
    cause_event_id: str
    urgent: bool = False
    card_number: str | None = _CARD


class NotificationFailed(_Notifications):
    person_id: str
    message_id: str
    template: str
    channel: str
    cause_event_id: str
    attempts: int
    error: str
    card_number: str | None = _CARD
