"""Serves the contract from a service: the AsyncAPI document and each event type's schema.

The document is the committed one (``contract/asyncapi.json`` and ``.yaml``: what is
published is what is served); the schemas are built from the running code's models,
identical to the committed files while ``python -m medcard.contract --check`` passes.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from shared.domain import NotFound
from shared.errors import errors, example

from .generate import CONTRACT_DIR
from .schemas import all_event_schemas

router = APIRouter(tags=["contract"])
ASYNCAPI_EXAMPLE = {
    "asyncapi": "3.0.0", "info": {"title": "Medical insurance card ecosystem: events", "version": "1.0.0"},
    "channels": {"cards": {"address": "medcard.cards", "messages": {"CardLost": {
        "$ref": "#/components/messages/CardLost"}}}},
    "operations": {}, "components": {"messages": {}, "schemas": {}},
}
"""The document's shape, much shortened: the real one lists every topic and event type."""
SCHEMA_EXAMPLE = {
    "$schema": "https://json-schema.org/draft/2020-12/schema", "title": "CardLost",
    "x-event-type": "cn.medcard.cards.CardLost.v1", "x-service": "cards", "x-version": 1, "type": "object",
    "properties": {"person_id": {"type": "string"}, "card_number": {"type": "string"},
                   "channel": {"enum": ["online", "bank"], "type": "string"}, "voucher": {"type": "string"},
                   "business_date": {"format": "date", "type": "string"}},
    "required": ["person_id", "card_number", "channel", "voucher", "business_date"],
}
"""One event type's schema, shortened."""


@cache
def _document() -> dict[str, Any]:
    return json.loads((CONTRACT_DIR / "asyncapi.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@cache
def _document_yaml() -> str:
    return (CONTRACT_DIR / "asyncapi.yaml").read_text(encoding="utf-8")


@cache
def _schemas() -> dict[str, dict[str, Any]]:
    return all_event_schemas()


@router.get("/asyncapi.json", responses=example(ASYNCAPI_EXAMPLE))
async def asyncapi_json() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every topic and event (JSON)."""
    return _document()


@router.get("/asyncapi.yaml", response_class=Response,
            responses=example("asyncapi: 3.0.0\ninfo:\n  title: 'Medical insurance card ecosystem: events'\n"
                              "  version: 1.0.0\n", media_type="application/yaml"))
async def asyncapi_yaml_document() -> Response:
    """The AsyncAPI 3.0 document of every topic and event (YAML)."""
    return Response(_document_yaml(), media_type="application/yaml")


@router.get("/schemas/{event_type}.json", responses={**example(SCHEMA_EXAMPLE), **errors(404, 422)})
async def event_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of one event type's payload, e.g. cn.medcard.cards.CardLost.v1."""
    schema = _schemas().get(event_type)
    if schema is None:
        raise NotFound(f"unknown event type {event_type!r}; the AsyncAPI document lists every type")
    return schema
