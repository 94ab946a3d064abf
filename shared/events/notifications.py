"""Events of the notifications service: deliveries to cardholders."""

from __future__ import annotations

from typing import ClassVar, Literal

from .base import EventData


class _Notifications(EventData):
    service: ClassVar[str] = "notifications"


class NotificationSent(_Notifications):
    person_id: str
    message_id: str
    template: str
    channel: str
    cause_event_id: str
    urgent: bool = False


class NotificationFailed(_Notifications):
    person_id: str
    message_id: str
    template: str
    channel: str
    cause_event_id: str
    attempts: int
    error: str
