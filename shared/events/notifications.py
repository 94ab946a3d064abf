"""Events of the notifications service: deliveries to cardholders."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from .base import EventData, MaybePersonal, Personal

_CARD = Field(None, description="The card the message is about, if any (also the CloudEvents subject)")


class _Notifications(EventData):
    service: ClassVar[str] = "notifications"


class NotificationSent(_Notifications):
    person_id: Personal
    message_id: str
    template: str
    channel: str
    cause_event_id: str
    urgent: bool = False
    card_number: MaybePersonal = _CARD


class NotificationFailed(_Notifications):
    person_id: Personal
    message_id: str
    template: str
    channel: str
    cause_event_id: str
    attempts: int
    error: Personal = Field(description="The last attempt's error; a provider's text may echo the recipient")
    card_number: MaybePersonal = _CARD
