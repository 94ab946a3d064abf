"""What every service shares at run time: database, outbox relay, consumers, and the
FastAPI app with /health, /ready, /metrics, error handling and correlation ids."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import date
from typing import Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from pydantic import BaseModel
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError, ServerSelectionTimeoutError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import require_roles
from .consumer import BatchHandler, ConsumerRunner, Handler
from .dbstats import DbCommandStats
from .calendar import BusinessCalendar
from .calendar_api import calendar_router
from .contract.router import router as contract_router
from .domain import DomainError
from .errors import errors, example, status_of
from .kafka import ensure_topics
from .bounded import cancel_and_wait, within
from .database import database_away, mongo_client
from .logging import bind, clear, configure, get_logger
from .outbox import AggregateStore, ConcurrencyConflict
from .relay import OutboxRelay
from .revocations import COLLECTION as REVOCATIONS
from .revocations import TokenRevocations
from .security import verifications
from .settings import Settings, get_settings
from .topics import topic_for_service

S = TypeVar("S", bound=BaseModel)
log = get_logger("service")


class ServiceRuntime:
    """The I/O side of one service: wired once, used by its routes and consumers."""

    def __init__(self, name: str, settings: Settings | None = None) -> None:
        self.name = name
        self.settings = settings or get_settings()
        self.db_stats = DbCommandStats()
        self.mongo: AsyncMongoClient[dict[str, Any]] = mongo_client(
            self.settings.mongo_url, event_listeners=[self.db_stats])
        self.db = self.mongo[self.settings.database(name)]
        self.relay = OutboxRelay(self.settings, [], name=name)
        self.consumers: list[ConsumerRunner] = []
        self.stores: list[AggregateStore[Any]] = []
        self.setup_hooks: list[Callable[[], Awaitable[None]]] = []
        self.background: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self.stop_hooks: list[Callable[[], Awaitable[None]]] = []
        """Run at a stop, after the consumers and before the relay and the database close."""
        self.bootstrapped = asyncio.Event()
        self.business_date: Callable[[], Awaitable[date]] | None = None
        """The business date the service dates its commands with (told by ``/ready``)."""
        self._tasks: list[asyncio.Task[Any]] = []

    def store(self, collection: str, state_type: type[S]) -> AggregateStore[S]:
        """An aggregate collection whose outbox the relay publishes."""
        coll = self.db[collection]
        store = AggregateStore(coll, service=self.name, state_type=state_type, on_saved=self.relay.notify)
        self.relay.collections.append(coll)
        self.stores.append(store)
        return store

    def consume(self, services: list[str], handler: Handler,
                batch_handler: BatchHandler | None = None) -> ConsumerRunner:
        """Consume the topics of the given services with this service's consumer group."""
        runner = ConsumerRunner(
            self.settings, service=self.name,
            topics=[topic_for_service(s, self.settings.namespace) for s in services], handler=handler,
            batch_handler=batch_handler,
        )
        self.consumers.append(runner)
        return runner

    async def _bootstrap(self) -> None:
        """Indexes and topics, retried until the servers answer; then start the workers."""
        delay = 0.2
        while True:
            try:
                for store in self.stores:
                    await store.create_indexes()
                for hook in self.setup_hooks:
                    await hook()
                await ensure_topics(self.settings)
                break
            except Exception as err:  # servers not up yet: keep trying
                log.warning("bootstrap.retry", error=repr(err), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.relay.start()
        for runner in self.consumers:
            runner.start()
        for job in self.background:
            self._tasks.append(asyncio.create_task(job()))
        self.bootstrapped.set()
        log.info("service.started", consumers=len(self.consumers))

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._bootstrap(), name=f"bootstrap-{self.name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            if not await cancel_and_wait(task, 10.0):
                log.error("service.task_would_not_stop", task=task.get_name())
        await asyncio.gather(*(runner.stop() for runner in self.consumers))
        for hook in self.stop_hooks:
            await hook()
        await self.relay.stop()
        await self.mongo.close()
        log.info("service.stopped")

    async def readiness(self) -> dict[str, Any]:
        checks: dict[str, Any] = {"bootstrapped": self.bootstrapped.is_set()}
        try:
            await within(self.db.command("ping"), 2.0, "database ping")
            checks["database"] = True
        except Exception:
            checks["database"] = False
        checks["kafka"] = self.relay.kafka_ok and all(c.running for c in self.consumers)
        checks["ready"] = all(checks.values())
        if self.business_date is not None:
            checks["business_date"] = await self._business_date() if checks["database"] else None
        return checks

    async def _business_date(self) -> str | None:
        """The service's business date, ISO; None when its database does not answer."""
        assert self.business_date is not None
        try:
            return (await within(self.business_date(), 1.0, "reading the business date")).isoformat()
        except Exception:
            return None


class _RuntimeCollector:
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime

    def collect(self):  # type: ignore[no-untyped-def]
        rt = self.runtime
        yield CounterMetricFamily("medcard_events_published", "Events published by the outbox relay",
                                  value=rt.relay.published)
        applied = CounterMetricFamily("medcard_events_applied", "Events applied by consumers", labels=["group"])
        dead = CounterMetricFamily("medcard_events_dead_lettered", "Events sent to a DLQ", labels=["group"])
        for c in rt.consumers:
            applied.add_metric([c.group_id], c.applied)
            dead.add_metric([c.group_id], c.dead_lettered)
        yield applied
        yield dead
        commands = CounterMetricFamily("medcard_db_commands", "Database commands sent",
                                       labels=["command", "collection", "shape"])
        seconds = CounterMetricFamily("medcard_db_command_seconds", "Time spent in database commands",
                                      labels=["command", "collection", "shape"])
        for key, n, secs in rt.db_stats.snapshot():
            commands.add_metric(list(key), n)
            seconds.add_metric(list(key), secs)
        yield commands
        yield seconds
        yield GaugeMetricFamily("medcard_kafka_ok", "Relay can reach Kafka", value=float(rt.relay.kafka_ok))
        yield CounterMetricFamily("medcard_secret_verifications", "Password and PIN verifications with argon2",
                                  value=verifications())


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


def create_app(runtime: ServiceRuntime, *, title: str, description: str, routers: list[Any]) -> FastAPI:
    settings = runtime.settings
    configure(runtime.name, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        yield
        await runtime.stop()

    app = FastAPI(title=title, description=description, version="1.0.0", lifespan=lifespan)
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes)  # inside the context middleware
    app.state.runtime = runtime
    app.state.settings = settings
    app.state.revocations = TokenRevocations(runtime.db[REVOCATIONS])  # cardholder tokens after a lock
    registry = CollectorRegistry()
    registry.register(_RuntimeCollector(runtime))  # type: ignore[arg-type]
    requests = Counter("medcard_http_requests", "HTTP requests", ["method", "route", "status"], registry=registry)
    latency = Histogram("medcard_http_seconds", "HTTP latency", ["route"], registry=registry)

    app.add_middleware(RequestContext, service=runtime.name, requests=requests, latency=latency)

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
        if not database_away(err):
            raise err  # a bug, not an outage: a 500, logged with its traceback
        # No server found: nothing was sent. A connection lost (or a server stopping) in the
        # middle of an operation may have lost the reply to a write it applied: the client
        # should look before it retries.
        detail = ("database unavailable; nothing was changed" if isinstance(err, ServerSelectionTimeoutError)
                  else "database connection lost; a change in flight may or may not have been made")
        return JSONResponse(error_body("unavailable", detail), status_code=503)

    not_ready = {"bootstrapped": True, "database": True, "kafka": False, "ready": False,
                 "business_date": "2026-01-05"}

    @app.get("/health", tags=["ops"], responses=example({"status": "ok", "service": runtime.name}))
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "service": runtime.name}

    @app.get("/ready", tags=["ops"], responses={
        **example({"bootstrapped": True, "database": True, "kafka": True, "ready": True,
                   "business_date": "2026-01-05"}),
        **example(not_ready, 503, description="Not ready: the checks that failed are false")})
    async def ready() -> JSONResponse:
        """Readiness: database and Kafka reachable, workers running; and the business date
        the service dates its commands with (null while its database does not answer)."""
        checks = await runtime.readiness()
        return JSONResponse(checks, status_code=200 if checks["ready"] else 503)

    @app.get("/ops/outbox", tags=["ops"], dependencies=[Depends(require_roles("operator"))], responses={
        **example({"pending": 0, "by_collection": {"accounts": 0, "merchants": 0}, "published": 1520,
                   "consumers": [{"group": "medcard.bank", "applied": 1498, "dead_lettered": 0, "running": True}]}),
        **errors(401, 403)})
    async def outbox() -> dict[str, Any]:
        """Events written but not yet acknowledged by Kafka, per aggregate collection."""
        pending = {s.collection.name: await s.collection.count_documents({"pending": True}) for s in runtime.stores}
        return {"pending": sum(pending.values()), "by_collection": pending, "published": runtime.relay.published,
                "consumers": [{"group": c.group_id, "applied": c.applied, "dead_lettered": c.dead_lettered,
                               "running": c.running} for c in runtime.consumers]}

    @app.get("/ops/drain", tags=["ops"], dependencies=[Depends(require_roles("operator"))], responses={
        **example({"relay_idle": True, "published": 1520, "applied": 1498, "dead_lettered": 0,
                   "groups": {"medcard.bank": ["medcard.identity", "medcard.cards"]}}),
        **errors(401, 403)})
    async def drain() -> dict[str, Any]:
        """Cheap drain signal (no scan): is the relay idle, what have the consumers applied."""
        return {"relay_idle": runtime.relay.idle, "published": runtime.relay.published,
                "applied": sum(c.applied for c in runtime.consumers),
                "dead_lettered": sum(c.dead_lettered for c in runtime.consumers),
                "groups": {c.group_id: c.topics for c in runtime.consumers}}

    @app.get("/metrics", tags=["ops"], include_in_schema=False, dependencies=[Depends(require_roles("operator"))])
    async def metrics() -> PlainTextResponse:
        """Prometheus metrics, for operators (scrape with an operator's bearer token)."""
        return PlainTextResponse(generate_latest(registry).decode(), media_type="text/plain; version=0.0.4")

    for router in [*routers, calendar_router(BusinessCalendar.from_setting(settings.holidays)), contract_router]:
        _summaries_from_docstrings(router.routes)
        app.include_router(router)
    _summaries_from_docstrings(app.routes)
    return app


def _summaries_from_docstrings(routes: list[Any]) -> None:
    """One-line docstrings become the OpenAPI summaries (set before a router is included:
    inclusion copies them)."""
    for context in iter_route_contexts(routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.description and not route.summary:
            route.summary = route.description.strip().splitlines()[0]


def correlation_id(request: Request) -> str:
    return getattr(request.state, "correlation_id", None) or str(uuid.uuid4())


def runtime_of(request: Request) -> ServiceRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]
