"""The cards service: the card lifecycle, loss reports and replacement cards.
Run with ``uvicorn --factory services.cards.app:create``."""

from __future__ import annotations

from fastapi import FastAPI

from shared.app import ServiceSpec, build_app
from shared.settings import Settings

from . import api
from .deps import Cards
from .handlers import CONSUMERS

SERVICE = ServiceSpec("cards", Cards, CONSUMERS, api)


def create(settings: Settings | None = None) -> FastAPI:
    return build_app(SERVICE, settings)
