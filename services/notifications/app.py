"""The notifications service: messages to cardholders, webhooks for external systems, and
the published contract. Run with ``uvicorn --factory services.notifications.app:create``."""

from __future__ import annotations

from fastapi import FastAPI

from shared.app import ServiceSpec, build_app
from shared.settings import Settings

from . import api
from .deps import Notifications
from .handlers import CONSUMERS

SERVICE = ServiceSpec("notifications", Notifications, CONSUMERS, api)


def create(settings: Settings | None = None) -> FastAPI:
    return build_app(SERVICE, settings)
