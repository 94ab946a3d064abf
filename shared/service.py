"""What every service shares at run time, assembled: ``create_app`` puts a service's
runtime (``shared/runtime.py``), the HTTP edge (``shared/http.py``), the operators' routes
(``shared/ops_routes.py``) and its own routers into one FastAPI app. Services import their
runtime pieces from here: ``ServiceRuntime``, ``create_app``, ``correlation_id``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute, iter_route_contexts
from prometheus_client import Counter, Histogram

from .calendar import BusinessCalendar
from .calendar_api import calendar_router
from .contract.router import router as contract_router
from .http import RequestContext, RequestGuard, add_error_handlers, correlation_id, error_body
from .logging import configure
from .ops_routes import metrics_registry, ops_router
from .revocations import COLLECTION as REVOCATIONS
from .revocations import TokenRevocations
from .runtime import ServiceRuntime

__all__ = ["ServiceRuntime", "correlation_id", "create_app", "error_body", "runtime_of"]


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
    registry = metrics_registry(runtime)
    requests = Counter("medcard_http_requests", "HTTP requests", ["method", "route", "status"], registry=registry)
    latency = Histogram("medcard_http_seconds", "HTTP latency", ["route"], registry=registry)

    app.add_middleware(RequestContext, service=runtime.name, requests=requests, latency=latency)
    add_error_handlers(app)

    calendar = calendar_router(BusinessCalendar.from_setting(settings.holidays))
    for router in [ops_router(runtime, registry), *routers, calendar, contract_router]:
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


def runtime_of(request: Request) -> ServiceRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]
