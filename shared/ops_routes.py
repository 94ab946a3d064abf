"""The operators' routes every service has: liveness, readiness (with the business date),
the outbox and drain signals, and the Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .auth import require_roles
from .database import count_flagged
from .errors import errors, example
from .runtime import ServiceRuntime
from .security import verifications


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


def metrics_registry(runtime: ServiceRuntime) -> CollectorRegistry:
    """The service's own registry, with the runtime's counters read at each scrape."""
    registry = CollectorRegistry()
    registry.register(_RuntimeCollector(runtime))
    return registry


def ops_router(runtime: ServiceRuntime, registry: CollectorRegistry) -> APIRouter:
    router = APIRouter()
    not_ready = {"bootstrapped": True, "database": True, "kafka": False, "ready": False,
                 "business_date": "2026-01-05"}

    @router.get("/health", tags=["ops"], responses=example({"status": "ok", "service": runtime.name}))
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "service": runtime.name}

    @router.get("/ready", tags=["ops"], responses={
        **example({"bootstrapped": True, "database": True, "kafka": True, "ready": True,
                   "business_date": "2026-01-05"}),
        **example(not_ready, 503, description="Not ready: the checks that failed are false")})
    async def ready() -> JSONResponse:
        """Readiness: database and Kafka reachable, workers running; and the business date
        the service dates its commands with (null while its database does not answer)."""
        checks = await runtime.readiness()
        return JSONResponse(checks, status_code=200 if checks["ready"] else 503)

    @router.get("/ops/outbox", tags=["ops"], dependencies=[Depends(require_roles("operator"))], responses={
        **example({"pending": 0, "by_collection": {"accounts": 0, "merchants": 0}, "published": 1520,
                   "consumers": [{"group": "medcard.bank", "applied": 1498, "dead_lettered": 0, "running": True}]}),
        **errors(401, 403)})
    async def outbox() -> dict[str, Any]:
        """Events written but not yet acknowledged by Kafka, per aggregate collection."""
        pending = {s.collection.name: await count_flagged(s.collection, "pending")
                   for s in runtime.stores}
        return {"pending": sum(pending.values()), "by_collection": pending, "published": runtime.relay.published,
                "consumers": [{"group": c.group_id, "applied": c.applied, "dead_lettered": c.dead_lettered,
                               "running": c.running} for c in runtime.consumers]}

    @router.get("/ops/drain", tags=["ops"], dependencies=[Depends(require_roles("operator"))], responses={
        **example({"relay_idle": True, "published": 1520, "applied": 1498, "dead_lettered": 0,
                   "groups": {"medcard.bank": ["medcard.identity", "medcard.cards"]}}),
        **errors(401, 403)})
    async def drain() -> dict[str, Any]:
        """Cheap drain signal (no scan): is the relay idle, what have the consumers applied."""
        return {"relay_idle": runtime.relay.idle, "published": runtime.relay.published,
                "applied": sum(c.applied for c in runtime.consumers),
                "dead_lettered": sum(c.dead_lettered for c in runtime.consumers),
                "groups": {c.group_id: c.topics for c in runtime.consumers}}

    @router.get("/metrics", tags=["ops"], include_in_schema=False, dependencies=[Depends(require_roles("operator"))])
    async def metrics() -> PlainTextResponse:
        """Prometheus metrics, for operators (scrape with an operator's bearer token)."""
        return PlainTextResponse(generate_latest(registry).decode(), media_type="text/plain; version=0.0.4")

    return router
