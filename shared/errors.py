"""The HTTP face of the domain's errors: each error's status, and the body of every 4xx answer.

The errors themselves live in ``shared/domain.py`` and know nothing of HTTP; they are
imported here too, so the API layer has one place to import them from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from .domain import Conflict, DomainError, Forbidden, Invalid, Locked, NotFound, Unauthorized

__all__ = ["STATUS", "ApiError", "Conflict", "DomainError", "Error", "Forbidden", "Invalid", "Locked", "NotFound",
           "Unauthorized", "errors", "example", "status_of"]


class ApiError(DomainError):
    """A refusal of the API layer itself (a rate limit, a dependency away), with its status."""

    status = 400


STATUS: dict[type, int] = {
    NotFound: 404, Conflict: 409, Invalid: 422, Unauthorized: 401, Forbidden: 403, Locked: 423, DomainError: 400,
}
"""The HTTP status of each domain error: the one place the domain meets HTTP."""


def status_of(err: DomainError) -> int:
    """The status of an error: its own (an ``ApiError``), or its nearest class's in ``STATUS``."""
    if isinstance(err, ApiError):
        return err.status
    for cls in type(err).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


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
