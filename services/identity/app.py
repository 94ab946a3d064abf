"""The identity service: the agency's register, online accounts, staff, tokens and the
business clock. Run with ``uvicorn --factory services.identity.app:create``."""

from __future__ import annotations

from fastapi import FastAPI

from shared.app import ServiceSpec, build_app
from shared.settings import Settings

from . import api
from .deps import Identity
from .handlers import CONSUMERS

SERVICE = ServiceSpec("identity", Identity, CONSUMERS, api)


def create(settings: Settings | None = None) -> FastAPI:
    return build_app(SERVICE, settings)
