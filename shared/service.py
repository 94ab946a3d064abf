"""What every service shares at run time: database, outbox relay, consumers, and the
FastAPI app with /health, /ready, /metrics, error handling and correlation ids."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from pydantic import BaseModel
from pymongo import AsyncMongoClient
from pymongo.errors import ConnectionFailure, PyMongoError, ServerSelectionTimeoutError

from .auth import require_roles
from .consumer import ConsumerRunner, Handler
from .contract.router import router as contract_router
from .errors import DomainError
from .kafka import ensure_topics
from .logging import bind, clear, configure, get_logger
from .outbox import AggregateStore, ConcurrencyConflict
from .relay import OutboxRelay
from .settings import Settings, get_settings
from .topics import topic_for_service

S = TypeVar("S", bound=BaseModel)
log = get_logger("service")


class ServiceRuntime:
    """The I/O side of one service: wired once, used by its routes and consumers."""

    def __init__(self, name: str, settings: Settings | None = None) -> None:
        self.name = name
        self.settings = settings or get_settings()
        # At most 20 operations at once: FerretDB's SQLite pool has 100 connections per
        # database and an update holds two of them (its read, then its write transaction),
        # so an unbounded client can exhaust the pool and deadlock the server.
        self.mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            self.settings.mongo_url, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000, tz_aware=True,
            maxPoolSize=20,
        )
        self.db = self.mongo[self.settings.database(name)]
        self.relay = OutboxRelay(self.settings, [], name=name)
        self.consumers: list[ConsumerRunner] = []
        self.stores: list[AggregateStore[Any]] = []
        self.setup_hooks: list[Callable[[], Awaitable[None]]] = []
        self.background: list[Callable[[], Awaitable[None]]] = []
        self.bootstrapped = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []

    def store(self, collection: str, state_type: type[S]) -> AggregateStore[S]:
        """An aggregate collection whose outbox the relay publishes."""
        coll = self.db[collection]
        store = AggregateStore(coll, service=self.name, state_type=state_type, on_saved=self.relay.notify)
        self.relay.collections.append(coll)
        self.stores.append(store)
        return store

    def consume(self, services: list[str], handler: Handler) -> ConsumerRunner:
        """Consume the topics of the given services with this service's consumer group."""
        runner = ConsumerRunner(
            self.settings, service=self.name,
            topics=[topic_for_service(s, self.settings.namespace) for s in services], handler=handler,
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
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for runner in self.consumers:
            await runner.stop()
        await self.relay.stop()
        await self.mongo.close()

    async def readiness(self) -> dict[str, Any]:
        checks: dict[str, Any] = {"bootstrapped": self.bootstrapped.is_set()}
        try:
            await asyncio.wait_for(self.db.command("ping"), 2.0)
            checks["database"] = True
        except Exception:
            checks["database"] = False
        checks["kafka"] = self.relay.kafka_ok and all(c.running for c in self.consumers)
        checks["ready"] = all(checks.values())
        return checks


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
        yield GaugeMetricFamily("medcard_kafka_ok", "Relay can reach Kafka", value=float(rt.relay.kafka_ok))


def error_body(code: str, detail: str) -> dict[str, str]:
    return {"error": code, "detail": detail}


def create_app(runtime: ServiceRuntime, *, title: str, description: str, routers: list[Any]) -> FastAPI:
    settings = runtime.settings
    configure(runtime.name, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        yield
        await runtime.stop()

    app = FastAPI(title=title, description=description, version="1.0.0", lifespan=lifespan)
    app.state.runtime = runtime
    app.state.settings = settings
    registry = CollectorRegistry()
    registry.register(_RuntimeCollector(runtime))  # type: ignore[arg-type]
    requests = Counter("medcard_http_requests", "HTTP requests", ["method", "route", "status"], registry=registry)
    latency = Histogram("medcard_http_seconds", "HTTP latency", ["route"], registry=registry)

    @app.middleware("http")
    async def context(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        clear()
        cid = request.headers.get("x-correlation-id") or str(uuid.uuid4())
        request.state.correlation_id = cid
        bind(service=runtime.name, correlation_id=cid)
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.max_body_bytes:
            return JSONResponse(error_body("payload_too_large", f"request body over {settings.max_body_bytes} bytes"),
                                status_code=413)
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        requests.labels(request.method, route, str(response.status_code)).inc()
        latency.labels(route).observe(time.perf_counter() - started)
        response.headers["x-correlation-id"] = cid
        return response

    @app.exception_handler(DomainError)
    async def domain_error(_: Request, err: DomainError) -> JSONResponse:
        return JSONResponse(error_body(err.code, err.message), status_code=err.status)

    @app.exception_handler(ConcurrencyConflict)
    async def conflict(_: Request, err: ConcurrencyConflict) -> JSONResponse:
        return JSONResponse(error_body("concurrent_update", str(err)), status_code=409)

    @app.exception_handler(ConnectionFailure)
    async def db_down(_: Request, err: PyMongoError) -> JSONResponse:
        # No server found: nothing was sent. A connection lost mid-operation may have lost the
        # reply to a write the server applied; the client should look before it retries.
        detail = ("database unavailable; nothing was changed" if isinstance(err, ServerSelectionTimeoutError)
                  else "database connection lost; a change in flight may or may not have been made")
        return JSONResponse(error_body("unavailable", detail), status_code=503)

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "service": runtime.name}

    @app.get("/ready", tags=["ops"])
    async def ready() -> JSONResponse:
        """Readiness: database and Kafka reachable, workers running."""
        checks = await runtime.readiness()
        return JSONResponse(checks, status_code=200 if checks["ready"] else 503)

    @app.get("/ops/outbox", tags=["ops"], dependencies=[Depends(require_roles("operator"))])
    async def outbox() -> dict[str, Any]:
        """Events written but not yet acknowledged by Kafka, per aggregate collection."""
        pending = {s.collection.name: await s.collection.count_documents({"pending": True}) for s in runtime.stores}
        return {"pending": sum(pending.values()), "by_collection": pending, "published": runtime.relay.published,
                "consumers": [{"group": c.group_id, "applied": c.applied, "dead_lettered": c.dead_lettered,
                               "running": c.running} for c in runtime.consumers]}

    @app.get("/ops/drain", tags=["ops"], dependencies=[Depends(require_roles("operator"))])
    async def drain() -> dict[str, Any]:
        """Cheap drain signal (no scan): is the relay idle, what have the consumers applied."""
        return {"relay_idle": runtime.relay.idle, "published": runtime.relay.published,
                "applied": sum(c.applied for c in runtime.consumers),
                "dead_lettered": sum(c.dead_lettered for c in runtime.consumers),
                "groups": {c.group_id: c.topics for c in runtime.consumers}}

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(registry).decode(), media_type="text/plain; version=0.0.4")

    for router in [*routers, contract_router]:
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
