"""Messages to cardholders and their delivery state: pure rules, no I/O.

Each message is its own aggregate (id derived from the cause event and the template,
so one event never yields the same message twice). Its status moves
pending -> sent, or pending -> (retry later) -> ... -> failed once the attempts are
exhausted; each outcome is published (NotificationSent / NotificationFailed) in the
same write as the status. A message whose person's contact details have not arrived
yet waits (pending -> awaiting_contact -> pending once they do, no attempt spent); an
operator may send a failed one again (failed -> pending, attempts reset). Every change
of status is kept in the message's history.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, PlainSerializer

from shared.card_state import CardState
from shared.domain import Conflict, Invalid, NotFound
from shared.events import CloudEvent, NotificationFailed, NotificationSent
from shared.domain import Decision

from .compose import Draft
from .templates import Language

Status = Literal["pending", "awaiting_contact", "sent", "failed"]
_IDS = uuid.UUID("6f1c1d52-7b0e-4c4e-9a51-2f3d0c1f5e10")


def stamp(instant: datetime) -> str:
    """A UTC instant as fixed-width text: sorts and compares like the instant itself."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


Instant = Annotated[datetime, PlainSerializer(stamp, return_type=str, when_used="json")]


class Recipient(BaseModel):
    """How to reach a person and which cards they hold (from identity's and cards' events)."""

    person_id: str
    name: str | None = None
    mobile: str | None = None
    language: Language = "zh"
    cards: dict[str, CardState] = {}
    """Card number -> its state in the shared vocabulary, in the order the cards were issued."""


class StatusChange(BaseModel):
    """One change of a message's status: when, to what, why, and which operator made it."""

    at: Instant
    status: Status
    note: str | None = None
    by: str | None = None


class Message(BaseModel):
    """One message to a cardholder: what it says (template and parameters) and how its delivery went."""

    message_id: str
    person_id: str
    template: str
    params: dict[str, Any]
    urgent: bool
    card_number: str | None
    cause_event_id: str
    cause_type: str
    correlation_id: str
    created_at: Instant
    business_date: date | None = None
    """The business date of what the message tells (the cause's own, else the business clock's
    when the message was composed); None for a message stored before it was recorded."""
    status: Status = "pending"
    attempts: int = 0
    next_attempt_at: Instant | None = None
    last_error: str | None = None
    channel: str | None = None
    language: Language | None = None
    text: str | None = None
    mobile: str | None = None
    sent_at: Instant | None = None
    history: list[StatusChange] = []

    def changed(self, now: datetime, status: Status, note: str | None = None, by: str | None = None,
                **update: Any) -> Message:
        """A copy in the new status, the change appended to the history."""
        return self.model_copy(update={
            **update, "status": status, "history": [*self.history, StatusChange(at=now, status=status, note=note,
                                                                                 by=by)]})


def message_id(cause_event_id: str, template: str) -> str:
    """The same cause and template always give the same id."""
    return "M" + uuid.uuid5(_IDS, f"{cause_event_id}/{template}").hex


def backoff(attempts: int, base: float, cap: float) -> timedelta:
    """Delay after the n-th failed attempt: base, 2*base, 4*base ... at most cap."""
    return timedelta(seconds=min(cap, base * 2 ** max(attempts - 1, 0)))


def business_date_of(cause: CloudEvent, clock_date: date) -> date:
    """The business date a message tells of: its cause's own (a loss, a purchase, a stamp...),
    else ``clock_date``, the business date when the message is composed."""
    own = getattr(cause.data, "business_date", None)
    return own if isinstance(own, date) else clock_date


def create_message(draft: Draft, cause: CloudEvent, now: datetime, business_date: date | None = None,
                   held_until: datetime | None = None) -> Callable[[Message | None], Decision[Message]]:
    """A new pending message, due now, or born leased to the dispatcher of the process that
    creates it (``held_until``: no other replica takes it before, as after a claim); an
    existing one stays as it is."""

    def decide(state: Message | None) -> Decision[Message]:
        if state is not None:
            return Decision(state)
        return Decision(Message(
            message_id=message_id(cause.id, draft.template), person_id=draft.person_id, template=draft.template,
            params=draft.params, urgent=draft.urgent, card_number=draft.card_number, cause_event_id=cause.id,
            cause_type=cause.type, correlation_id=cause.correlationid, created_at=now, next_attempt_at=held_until or now,
            business_date=business_date,
        ))

    return decide


def record_sent(
    *, now: datetime, channel: str, language: Language, text: str, mobile: str
) -> Callable[[Message | None], Decision[Message]]:
    """The channel accepted the message: it is sent (a message already settled stays so)."""

    def decide(state: Message | None) -> Decision[Message]:
        if state is None or state.status != "pending":
            return Decision(state)
        sent = state.changed(
            now, "sent", f"accepted by {channel}", attempts=state.attempts + 1, next_attempt_at=None, channel=channel,
            language=language, text=text, mobile=mobile, sent_at=now, last_error=None)
        return Decision(sent, [NotificationSent(
            person_id=sent.person_id, message_id=sent.message_id, template=sent.template, channel=channel,
            cause_event_id=sent.cause_event_id, urgent=sent.urgent, card_number=sent.card_number)])

    return decide


def record_failure(
    *, now: datetime, channel: str, error: str, max_attempts: int, base: float, cap: float
) -> Callable[[Message | None], Decision[Message]]:
    """The attempt failed: retry later with backoff, or fail for good after the last attempt."""

    def decide(state: Message | None) -> Decision[Message]:
        if state is None or state.status != "pending":
            return Decision(state)
        attempts = state.attempts + 1
        if attempts < max_attempts:
            return Decision(state.model_copy(update={
                "attempts": attempts, "last_error": error, "channel": channel,
                "next_attempt_at": now + backoff(attempts, base, cap)}))
        failed = state.changed(now, "failed", error, attempts=attempts, last_error=error, channel=channel,
                               next_attempt_at=None)
        return Decision(failed, [NotificationFailed(
            person_id=failed.person_id, message_id=failed.message_id, template=failed.template, channel=channel,
            cause_event_id=failed.cause_event_id, attempts=attempts, error=error, card_number=failed.card_number)])

    return decide


def await_contact(*, now: datetime) -> Callable[[Message | None], Decision[Message]]:
    """No contact details for the person yet: the message waits for them, no attempt spent."""

    def decide(state: Message | None) -> Decision[Message]:
        if state is None or state.status != "pending":
            return Decision(state)
        return Decision(state.changed(now, "awaiting_contact", "no contact details for the person yet",
                                      next_attempt_at=None))

    return decide


def contact_arrived(*, now: datetime) -> Callable[[Message | None], Decision[Message]]:
    """The person's contact details arrived: a waiting message is due now (any other stays as it is)."""

    def decide(state: Message | None) -> Decision[Message]:
        if state is None or state.status != "awaiting_contact":
            return Decision(state)
        return Decision(state.changed(now, "pending", "contact details arrived", next_attempt_at=now))

    return decide


class NotFailed(Conflict):
    """Only a failed message is sent again: a pending one is still being tried, a sent one
    reached the phone, a waiting one waits for the person's contact details."""


def check_only_failed_resent(message: Message) -> None:
    if message.status != "failed":
        raise NotFailed(f"message {message.message_id} is {message.status}: only a failed message can be resent")


def resend_failed(message_id: str, *, now: datetime, by: str) -> Callable[[Message | None], Decision[Message]]:
    """An operator sends a failed message again: due now, its attempts reset.

    NotFound for an unknown message, Conflict for one that has not failed.
    """

    def decide(state: Message | None) -> Decision[Message]:
        if state is None:
            raise NotFound(f"no message {message_id}")
        check_only_failed_resent(state)
        note = f"resent after {state.attempts} failed attempts; last error: {state.last_error}"
        return Decision(state.changed(now, "pending", note, by=by, attempts=0, next_attempt_at=now,
                                      last_error=None))

    return decide


def event_type_index(type_strings: list[str]) -> dict[str, set[str]]:
    """Every type string and every event name (``CardLost``: all its versions) -> type strings."""
    index: dict[str, set[str]] = {}
    for t in type_strings:
        index[t] = {t}
        index.setdefault(t.split(".")[-2], set()).add(t)
    return index


class UnknownEventTypes(Invalid):
    """A webhook asks for event types the catalogue (``/asyncapi.json``) does not have."""


def check_known_event_types(requested: list[str], index: dict[str, set[str]]) -> None:
    unknown = [t for t in requested if t not in index]
    if unknown:
        raise UnknownEventTypes(f"unknown event types: {', '.join(unknown)}; see /asyncapi.json for the catalogue")


def normalise_event_types(requested: list[str], index: dict[str, set[str]]) -> list[str]:
    """Webhook event types as full type strings; names (``CardLost``) are accepted too.

    Raises Invalid naming the unknown entries. An empty list means every type.
    """
    check_known_event_types(requested, index)
    return sorted({full for t in requested for full in index[t]})


def subscribed(event_types: list[str], event_type: str) -> bool:
    return not event_types or event_type in event_types


class EmptyReplayRange(Invalid):
    """A replay covers [since, until): nothing if ``since`` is not before ``until``."""


def check_replay_range(since: datetime, until: datetime) -> None:
    if since >= until:
        raise EmptyReplayRange("the replay range is empty: 'since' must be before 'until'")


class ReplayTooLong(Invalid):
    """One replay queues at most a bounded number of events: a longer range is replayed in parts."""


def check_replay_size(found: int, limit: int) -> None:
    """``found`` events in the range (read up to ``limit + 1``) are at most ``limit``."""
    if found > limit:
        raise ReplayTooLong(f"more than {limit} events in that range; replay a shorter one")
