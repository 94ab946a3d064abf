"""Domain errors carry their HTTP status and a precise message; they change nothing."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DomainError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class NotFound(DomainError):
    status, code = 404, "not_found"


class Conflict(DomainError):
    """An illegal state transition or a duplicate."""

    status, code = 409, "conflict"


class Invalid(DomainError):
    status, code = 422, "invalid"


class Unauthorized(DomainError):
    status, code = 401, "unauthorized"


class Forbidden(DomainError):
    status, code = 403, "forbidden"


class Locked(DomainError):
    status, code = 423, "locked"


class Error(BaseModel):
    """The body of every 4xx answer."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"error": "conflict", "detail": "precise reason"}]})
    error: str
    detail: str


def errors(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` entries for the given error statuses."""
    return {status: {"model": Error} for status in statuses}


def example(body: object, status: int = 200, media_type: str = "application/json",
            description: str | None = None) -> dict[int | str, dict[str, object]]:
    """An OpenAPI ``responses`` entry showing an example answer (for routes whose answer
    is not a model with its own examples)."""
    entry: dict[str, object] = {"content": {media_type: {"example": body}}}
    if description:
        entry["description"] = description
    return {status: entry}
