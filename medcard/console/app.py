"""The console app: the page at ``/`` and its API under ``/api``.

Run it with ``medcard console`` (127.0.0.1:8105) or
``uvicorn --factory medcard.console.app:create --port 8105``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from medcard.ops.state import default_urls
from shared.domain import DomainError
from shared.errors import status_of
from shared.kafka import TRANSIENT_KAFKA_ERRORS
from shared.service import error_body
from shared.settings import Settings, get_settings

from .api import session, watch

PAGE = Path(__file__).parent / "static" / "index.html"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                               "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def create(settings: Settings | None = None, *, urls: dict[str, str] | None = None) -> FastAPI:
    """The console for ``settings``' namespace; ``urls`` are the services' base URLs (for the
    state each holds about a card, and identity's staff login)."""
    app = FastAPI(title="medcard operators' console",
                  description="Live events, card stories, consumer lag and dead letters. Operators only.",
                  version="1.0.0")
    app.state.settings = settings or get_settings()
    app.state.urls = {**default_urls(), **(urls or {})}

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(DomainError)
    async def domain_error(_: Request, err: DomainError) -> JSONResponse:
        return JSONResponse(error_body(err.code, err.message), status_code=status_of(err))

    async def kafka_down(_: Request, err: Exception) -> JSONResponse:
        return JSONResponse(error_body("kafka_unavailable", f"Kafka did not answer: {err!r}"), status_code=503)

    for kafka_error in TRANSIENT_KAFKA_ERRORS:
        app.add_exception_handler(kafka_error, kafka_down)  # type: ignore[arg-type]

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(PAGE, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "service": "console"}

    app.include_router(session)
    app.include_router(watch)
    return app
