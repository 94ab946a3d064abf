"""Every event of the ecosystem, one discriminated union, and the Kafka codec.

``parse_event`` turns any envelope (a dict or Kafka record) into its typed model or
raises ``InvalidEvent`` with the reason, so any service can read any event and
reject an unknown or malformed one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union, cast

from pydantic import Field, TypeAdapter, ValidationError, create_model

from . import bank, cards, identity, notifications
from .bank import *  # noqa: F403
from .base import REGISTRY, SPECVERSION, CloudEvent, EventData, MaybePersonal, Personal
from .cards import *  # noqa: F403
from .identity import *  # noqa: F403
from .notifications import *  # noqa: F403

__all__ = [
    "REGISTRY",
    "SPECVERSION",
    "AnyEvent",
    "CloudEvent",
    "EventData",
    "InvalidEvent",
    "MaybePersonal",
    "Personal",
    "bank",
    "cards",
    "envelope_model",
    "identity",
    "notifications",
    "parse_event",
]


class InvalidEvent(ValueError):
    """An event that cannot be parsed: unknown type, malformed envelope or payload."""


def _envelope_for(type_string: str, data_cls: type[EventData]) -> type[CloudEvent]:
    return create_model(
        f"{data_cls.__name__}Event",
        __base__=CloudEvent,
        type=(cast(Any, Literal[type_string]), ...),  # a Literal of a value known only at run time
        data=(data_cls, ...),
    )


ENVELOPES: dict[str, type[CloudEvent]] = {t: _envelope_for(t, c) for t, c in REGISTRY.items()}
AnyEvent = Annotated[Union[tuple(ENVELOPES.values())], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
_ADAPTER: TypeAdapter[CloudEvent] = TypeAdapter(cast(Any, AnyEvent))


def envelope_model(type_string: str) -> type[CloudEvent]:
    return ENVELOPES[type_string]


def _reason(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        loc = ".".join(str(p) for p in e["loc"][1:])
        parts.append(f"{loc or 'event'}: {e['msg']}")
    return "; ".join(parts)


def parse_event(raw: dict[str, Any]) -> CloudEvent:
    """Validate an envelope dict (attributes + ``data``) against the union."""
    if not isinstance(raw, dict):
        raise InvalidEvent("event must be a JSON object")
    if raw.get("specversion") != SPECVERSION:
        raise InvalidEvent(f"unsupported specversion {raw.get('specversion')!r}")
    if raw.get("type") not in ENVELOPES:
        raise InvalidEvent(f"unknown event type {raw.get('type')!r}")
    try:
        return _ADAPTER.validate_python(raw)
    except ValidationError as err:
        raise InvalidEvent(_reason(err)) from None


def new_event(
    data: EventData,
    *,
    source: str,
    partitionkey: str,
    sequence: int,
    correlationid: str,
    causationid: str | None = None,
    subject: str | None = None,
) -> CloudEvent:
    """Wrap a payload in its typed envelope."""
    model = ENVELOPES[data.event_type()]
    return model(
        source=source, type=data.event_type(), subject=subject, sequence=sequence,
        partitionkey=partitionkey, correlationid=correlationid, causationid=causationid, data=data,
    )
