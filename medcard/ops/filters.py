"""Which records to show, and from where to start reading."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.domain import Invalid
from shared.topics import TOPICS

from .views import EventView

Start = Literal["now", "start"] | datetime


@dataclass(frozen=True)
class EventFilter:
    """Every given criterion must hold. ``types`` are short names (CardLost, any case) or
    full CloudEvents types; ``card`` is matched against the subject and the card numbers
    the payload names; ``person`` against the partition key and the payload's person."""

    types: tuple[str, ...] = ()
    card: str | None = None
    person: str | None = None
    correlation: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.types or self.card or self.person or self.correlation)

    def matches(self, view: EventView) -> bool:
        if view.envelope is None:
            return self.empty
        if self.types and not any(t == view.type or t.lower() == (view.name or "").lower() for t in self.types):
            return False
        if self.card and self.card not in view.card_numbers:
            return False
        if self.person and self.person not in view.persons:
            return False
        return not (self.correlation and self.correlation != view.correlation)


def parse_start(value: str) -> Start:
    """``now``, ``start`` or an ISO 8601 time (a time without offset is the machine's local time)."""
    if value in ("now", "start"):
        return value  # type: ignore[return-value]
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(f"--from must be now, start or an ISO 8601 time such as 2026-05-01T08:00:00Z; got {value!r}") \
            from None
    return moment if moment.tzinfo else moment.astimezone()


def topics_of(namespace: str, services: list[str] | None) -> list[str]:
    """The main topics of the given owning services (all of them when none is given)."""
    unknown = sorted(set(services or ()) - set(TOPICS))
    if unknown:
        raise Invalid(f"unknown service {', '.join(unknown)}; choose from {', '.join(TOPICS)}")
    return [TOPICS[s].name(namespace) for s in (services or TOPICS)]
