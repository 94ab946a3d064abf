"""The HTTP edge every service shares: the request guard (body size, JSON only), the
request context (correlation id, security headers, request metrics), and the error answers
(every refusal as ``{"error": code, "detail": message}``, never echoing what was sent)."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import Counter, Histogram
from pymongo.errors import PyMongoError, ServerSelectionTimeoutError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .database import database_away, write_conflict
from .domain import DomainError
from .errors import status_of
from .logging import bind, clear
from .outbox import ConcurrencyConflict


def error_body(code: str, detail: str) -> dict[str, str]:
    return {"error": code, "detail": detail}


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse(error_body(code, detail), status_code=status)


BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 406: "not_acceptable",
              413: "payload_too_large", 415: "unsupported_media_type"}


class BodyTooLarge(HTTPException):
    """Raised while a body is read once it passes the limit (an HTTPException, so FastAPI's
    body parsing lets it through to the handler instead of calling it a parse error)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes")


def is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class RequestGuard:
    """Refuses, before any handler runs, what no route accepts: a body over
    ``max_body_bytes`` (413: at once by its Content-Length, or while a chunked body is read)
    and a body that is not JSON (415). Nothing is changed by a refused request."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if length is not None and length.strip().isdigit() and int(length) > self.limit:
            await _error(413, "payload_too_large", f"request body over {self.limit} bytes")(scope, receive, send)
            return
        has_body = chunked or (length is not None and length.strip() not in ("", "0"))
        if has_body and scope["method"] in BODY_METHODS and not is_json(headers.get("content-type")):
            given = headers.get("content-type") or "no content type"
            detail = f"the request body must be JSON (content-type: application/json), not {given[:80]}"
            await _error(415, "unsupported_media_type", detail)(scope, receive, send)
            return
        received = 0
        started = False

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracked)
        except BodyTooLarge as err:
            if started:
                raise
            await _error(413, "payload_too_large", str(err.detail))(scope, receive, send)


CORRELATION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
"""What a caller's ``x-correlation-id`` may be before it is logged and put on events."""
SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store"),
                    (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer"))
"""On every answer (unless it set its own): answers carry personal data, so no cache keeps
them, no browser guesses their type, no page frames them."""


def with_security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    present = {name.lower() for name, _ in headers}
    return [*headers, *((name, value) for name, value in SECURITY_HEADERS if name not in present)]


class RequestContext:
    """Outermost layer: a correlation id for every request (taken from ``x-correlation-id`` or
    made), bound to the logs and echoed in the answer, the security headers of every answer,
    and the request counter and latency. A given correlation id that is too long or has other
    characters than ``CORRELATION_ID`` allows is a 400: it would reach events and logs.

    A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` (``@app.middleware``) runs
    the app in a task of its own behind memory streams, and profiling the POS under load put
    about half of the bank's CPU there."""

    def __init__(self, app: ASGIApp, service: str, requests: Counter, latency: Histogram) -> None:
        self.app, self.service, self.requests, self.latency = app, service, requests, latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        clear()
        given = Headers(scope=scope).get("x-correlation-id")
        cid = given if given and CORRELATION_ID.match(given) else str(uuid.uuid4())
        scope.setdefault("state", {})["correlation_id"] = cid
        bind(service=self.service, correlation_id=cid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = with_security_headers(
                    [*message["headers"], (b"x-correlation-id", cid.encode("latin-1"))])
            await send(message)

        try:
            if given is not None and cid != given:
                detail = "header x-correlation-id: at most 128 characters: letters, digits and . _ : -"
                await _error(400, "bad_request", detail)(scope, receive, send_with_id)
                return
            await self.app(scope, receive, send_with_id)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.requests.labels(scope["method"], route, str(status)).inc()
            self.latency.labels(route).observe(time.perf_counter() - started)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "items", 0, "amount_fen")`` -> ``body.items[0].amount_fen``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "request"


def validation_detail(err: RequestValidationError) -> tuple[int, str, str]:
    """Status, code and message of a refused request: every problem as ``location: message``,
    never the values sent (they may be a password, a PIN or an ID number)."""
    problems = list(err.errors())
    if any(p.get("type") == "json_invalid" for p in problems):
        p = next(p for p in problems if p.get("type") == "json_invalid")
        reason = (p.get("ctx") or {}).get("error", "")
        position = p["loc"][1] if len(p.get("loc", ())) > 1 else "?"
        return 400, "malformed_json", f"the request body is not valid JSON: {reason} at character {position}"
    parts = [f"{_location(p.get('loc', ()))}: {p.get('msg', 'invalid')}" for p in problems]
    return 422, "invalid", "; ".join(parts)


def add_error_handlers(app: FastAPI) -> None:
    """Every refusal answered the one way: a domain error with its status, a malformed or
    invalid request, an HTTP error, a write that kept conflicting, the database away."""

    @app.exception_handler(DomainError)
    async def domain_error(_: Request, err: DomainError) -> JSONResponse:
        return JSONResponse(error_body(err.code, err.message), status_code=status_of(err),
                            headers=getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, err: RequestValidationError) -> JSONResponse:
        status, code, detail = validation_detail(err)
        return _error(status, code, detail)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, err: HTTPException) -> Response:
        code = HTTP_CODES.get(err.status_code, "bad_request" if err.status_code < 500 else "server_error")
        return JSONResponse(error_body(code, str(err.detail)), status_code=err.status_code, headers=err.headers)

    @app.exception_handler(ConcurrencyConflict)
    async def conflict(_: Request, err: ConcurrencyConflict) -> JSONResponse:
        return JSONResponse(error_body("concurrent_update", str(err)), status_code=409)

    @app.exception_handler(PyMongoError)
    async def db_down(_: Request, err: PyMongoError) -> JSONResponse:
        if write_conflict(err):  # aborted for another write's locks: nothing of it was applied
            return JSONResponse(error_body("unavailable", "a concurrent write got in the way; nothing was "
                                           "changed; try again"), status_code=503)
        if not database_away(err):
            raise err  # a bug, not an outage: a 500, logged with its traceback
        # No server found: nothing was sent. A connection lost (or a server stopping) in the
        # middle of an operation may have lost the reply to a write it applied: the client
        # should look before it retries.
        detail = ("database unavailable; nothing was changed" if isinstance(err, ServerSelectionTimeoutError)
                  else "database connection lost; a change in flight may or may not have been made")
        return JSONResponse(error_body("unavailable", detail), status_code=503)


def correlation_id(request: Request) -> str:
    return getattr(request.state, "correlation_id", None) or str(uuid.uuid4())
