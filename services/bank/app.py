"""The bank service: personal medical accounts, card passwords, POS authorisation,
balances and statements, receipt stamps and the monthly transfer.

Run with ``uvicorn --factory services.bank.app:create``."""

from __future__ import annotations

from fastapi import FastAPI

from shared.app import ServiceSpec, build_app
from shared.settings import Settings

from . import api
from .deps import Bank
from .handlers import CONSUMERS

SERVICE = ServiceSpec("bank", Bank, CONSUMERS, api)


def create(settings: Settings | None = None) -> FastAPI:
    return build_app(SERVICE, settings)
