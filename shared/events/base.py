"""Event payloads and the CloudEvents 1.0 envelope that carries them on Kafka.

Every payload class names the service that owns it; its CloudEvents ``type`` is
``cn.medcard.<service>.<Name>.v<version>``. Raising ``version`` is how a breaking
change to a payload is announced (the contract check enforces it).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

SPECVERSION = "1.0"
TYPE_PREFIX = "cn.medcard"

REGISTRY: dict[str, type[EventData]] = {}
"""CloudEvents type string -> payload class, filled as payload classes are defined."""


@dataclass(frozen=True)
class Sensitive:
    """Field metadata: the field carries personal data (the rule is in the contract's
    description, ``shared.contract.asyncapi.SENSITIVE_DATA``)."""


SENSITIVE = Sensitive()
Personal = Annotated[str, SENSITIVE]
"""A string field with personal data: ``person_id: Personal``."""
MaybePersonal = Annotated[str | None, SENSITIVE]
"""An optional one: ``replaces: MaybePersonal = None``."""


class EventData(BaseModel):
    """Base of every event payload. Subclasses set ``service`` (and ``version`` if > 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: ClassVar[str] = ""
    version: ClassVar[int] = 1
    sensitive: ClassVar[tuple[str, ...]] = ()
    """Fields carrying personal data, those marked ``Personal`` (published for the contract)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.service and not cls.__name__.startswith("_"):
            REGISTRY[cls.event_type()] = cls

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.sensitive = tuple(name for name, field in cls.model_fields.items()
                              if any(isinstance(m, Sensitive) for m in field.metadata))

    @classmethod
    def event_type(cls) -> str:
        return f"{TYPE_PREFIX}.{cls.service}.{cls.__name__}.v{cls.version}"


def _now() -> datetime:
    return datetime.now(UTC)


class CloudEvent(BaseModel):
    """The CloudEvents 1.0 envelope plus our extension attributes.

    On Kafka it travels in binary mode: attributes as ``ce_*`` headers, ``data`` as the
    JSON record value, ``partitionkey`` as the record key.
    """

    model_config = ConfigDict(extra="forbid")

    specversion: str = SPECVERSION
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    source: str
    type: str
    time: datetime = Field(default_factory=_now)
    subject: str | None = None
    datacontenttype: str = "application/json"
    sequence: int = Field(ge=1, description="Position of this event in its aggregate's history")
    partitionkey: str = Field(min_length=1, description="The aggregate id; also the Kafka record key")
    correlationid: str
    causationid: str | None = None
    data: EventData

    @property
    def name(self) -> str:
        return self.type.split(".")[-2]

    @property
    def service(self) -> str:
        return self.type.split(".")[2]
