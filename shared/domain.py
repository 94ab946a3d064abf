"""What every service's domain builds on, and nothing else: a decision (the new state, its
events, a result) and the errors a rule raises when it refuses.

This module imports only the standard library, pydantic and the event models, so a domain
module (``services/<name>/domain.py``) stays pure: no database, no broker, no HTTP. The API
layer turns each error into its status in one place (``shared/errors.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from .events import EventData

S = TypeVar("S", bound=BaseModel)


@dataclass
class Decision(Generic[S]):
    """What a pure domain function decided: the new state, the events, a result."""

    state: S | None
    events: list[EventData] = field(default_factory=list)
    result: Any = None


class DomainError(Exception):
    """A refusal: the rule it broke, in a precise message, and a short machine-readable
    ``code``. It changes nothing: the command or event that met it is not applied."""

    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class NotFound(DomainError):
    """The thing asked about does not exist (or is not the asker's to see)."""

    code = "not_found"


class Conflict(DomainError):
    """An illegal state transition or a duplicate."""

    code = "conflict"


class Invalid(DomainError):
    """Well-formed input that breaks a rule of the business (a malformed ID number, an amount)."""

    code = "invalid"


class Unauthorized(DomainError):
    """Who is asking could not be established (a wrong password, an expired token)."""

    code = "unauthorized"


class Forbidden(DomainError):
    """Who is asking may not do this."""

    code = "forbidden"


class Locked(DomainError):
    """Locked after too many wrong tries."""

    code = "locked"
