"""The POS row's baseline: a bare FastAPI endpoint doing one ``find_one`` on the same
database the bank uses, run like a service (``uvicorn --factory
medcard.bench.baseline_app:create``, same host, flags and MongoDB client settings).

It takes the same request body as the bank's POS endpoint and answers with the document
it found; no authentication, no domain logic, no write, no event."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pymongo import AsyncMongoClient

from shared.database import mongo_client
from shared.settings import Settings


class Swipe(BaseModel):
    card_number: str
    pin: str
    merchant_id: str
    amount_fen: int
    kind: str = "purchase"


def create(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    mongo: AsyncMongoClient[dict[str, Any]] = mongo_client(settings.mongo_url)  # the services' client settings
    cards = mongo[settings.database("bank")]["card_index"]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await mongo.close()

    app = FastAPI(title="bench baseline", lifespan=lifespan)

    @app.get("/ready")
    async def ready() -> dict[str, bool]:
        await mongo.admin.command("ping")
        return {"ready": True}

    @app.post("/v1/pos/authorisations")
    async def lookup(body: Swipe) -> dict[str, Any]:
        doc = await cards.find_one({"_id": body.card_number})
        return {"card_number": body.card_number, "person_id": doc["person_id"] if doc else None}

    return app
