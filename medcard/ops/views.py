"""One Kafka record as an operator sees it: where it sits, its envelope, a one-line summary."""

from __future__ import annotations

from typing import Any

from aiokafka import ConsumerRecord
from pydantic import BaseModel, Field

from shared.codec import record_to_dict
from shared.events import REGISTRY, InvalidEvent

CARD_FIELDS = ("card_number", "old_card_number", "new_card_number", "replaces", "replaced_by")
"""Payload fields that name a card: an event about any of them is part of that card's story."""
HIDDEN_FACTS = frozenset({"person_id", "card_number"})
"""Shown elsewhere on the line (person, subject), so left out of the summary."""
OPERATIONAL_IDS = frozenset({"card_number", "old_card_number", "new_card_number", "replaces", "replaced_by",
                             "person_id", "account_id", "user_id", "error"})
"""Personal in the contract, but what an operator follows a case by (and a delivery's
error): shown. The rest of the personal data (name, mobile, ID number, login names) is not."""
MAX_FACTS = 8
MAX_FACT_CHARS = 40


def type_name(event_type: str | None) -> str | None:
    """The short name of a CloudEvents type: cn.medcard.cards.CardLost.v1 -> CardLost."""
    parts = (event_type or "").split(".")
    return parts[-2] if len(parts) >= 2 else event_type


class EventLine(BaseModel):
    """One record as the console and ``medcard card --json`` give it."""

    topic: str
    partition: int
    offset: int
    time: str | None = Field(description="The event's CloudEvents time (UTC, ISO 8601)")
    type: str | None
    name: str | None = Field(description="The short type name, e.g. CardLost")
    service: str | None
    subject: str | None
    person: str | None = Field(description="The partition key: the aggregate id, usually a person id")
    correlation: str | None
    summary: str = Field(description="Key facts of the payload, personal data left out")
    envelope: dict[str, Any] | None = Field(description="The CloudEvents envelope (attributes and data)")
    error: str | None = Field(None, description="Why the record is not a readable event, if it is not")


class EventView:
    """A record decoded with the project's codec (without validating the payload, so an
    event of a newer version than this tool knows still shows)."""

    def __init__(self, topic: str, partition: int, offset: int, timestamp: int,
                 envelope: dict[str, Any] | None, error: str | None = None) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.envelope = envelope
        self.error = error

    @classmethod
    def of(cls, record: ConsumerRecord[bytes, bytes]) -> EventView:
        try:
            envelope = record_to_dict(record)
        except InvalidEvent as err:
            return cls(record.topic, record.partition, record.offset, record.timestamp, None, str(err))
        return cls(record.topic, record.partition, record.offset, record.timestamp, envelope)

    def _attr(self, name: str) -> str | None:
        value = (self.envelope or {}).get(name)
        return str(value) if value is not None else None

    @property
    def data(self) -> dict[str, Any]:
        data = (self.envelope or {}).get("data")
        return data if isinstance(data, dict) else {}

    @property
    def type(self) -> str | None:
        return self._attr("type")

    @property
    def name(self) -> str | None:
        return type_name(self.type)

    @property
    def service(self) -> str | None:
        parts = (self.type or "").split(".")
        return parts[2] if len(parts) >= 4 else None

    @property
    def subject(self) -> str | None:
        return self._attr("subject")

    @property
    def person(self) -> str | None:
        return self._attr("partitionkey")

    @property
    def correlation(self) -> str | None:
        return self._attr("correlationid")

    @property
    def time(self) -> str | None:
        return self._attr("time")

    @property
    def sequence(self) -> int:
        try:
            return int(self._attr("sequence") or 0)
        except ValueError:
            return 0

    @property
    def card_numbers(self) -> set[str]:
        """The subject and every card number the payload names."""
        found = {str(self.data[f]) for f in CARD_FIELDS if self.data.get(f)}
        return found | ({self.subject} if self.subject else set())

    @property
    def persons(self) -> set[str]:
        """The partition key and the payload's person, if any."""
        found = {self.person} if self.person else set()
        return found | ({str(self.data["person_id"])} if self.data.get("person_id") else set())

    def summary(self) -> str:
        """The payload's key facts as ``name=value`` pairs, personal data left out."""
        if self.envelope is None:
            return f"unreadable record: {self.error}"
        payload_type = REGISTRY.get(self.type or "")
        hidden = HIDDEN_FACTS | (set(payload_type.sensitive if payload_type else ()) - OPERATIONAL_IDS)
        facts = [_fact(k, v) for k, v in self.data.items() if k not in hidden and v not in (None, "", [])]
        more = len(facts) - MAX_FACTS
        return " ".join(facts[:MAX_FACTS]) + (f" (+{more})" if more > 0 else "")

    def line(self) -> EventLine:
        return EventLine(
            topic=self.topic, partition=self.partition, offset=self.offset, time=self.time, type=self.type,
            name=self.name, service=self.service, subject=self.subject, person=self.person,
            correlation=self.correlation, summary=self.summary(), envelope=self.envelope, error=self.error,
        )


def _fact(key: str, value: Any) -> str:
    """``key=value``; an amount in fen is shown in yuan under its name without ``_fen``."""
    if key.endswith("_fen") and isinstance(value, int):
        key, text = key.removesuffix("_fen"), f"¥{value / 100:.2f}"
    elif isinstance(value, list):
        text = ",".join(str(v) for v in value)
    else:
        text = str(value)
    return f"{key}={text if len(text) <= MAX_FACT_CHARS else text[: MAX_FACT_CHARS - 1] + '…'}"
