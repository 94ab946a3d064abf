"""Serves the contract from a service: the AsyncAPI document and each event type's schema.

Built from the running code's models (identical to the committed files while
``python -m shared.contract.generate --check`` passes).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from shared.errors import NotFound

from .asyncapi import build_asyncapi
from .generate import asyncapi_yaml
from .schemas import all_event_schemas

router = APIRouter(tags=["contract"])


@cache
def _document() -> dict[str, Any]:
    return build_asyncapi()


@cache
def _schemas() -> dict[str, dict[str, Any]]:
    return all_event_schemas()


@router.get("/asyncapi.json")
async def asyncapi_json() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every topic and event (JSON)."""
    return _document()


@router.get("/asyncapi.yaml", response_class=Response,
            responses={200: {"content": {"application/yaml": {}}}})
async def asyncapi_yaml_document() -> Response:
    """The AsyncAPI 3.0 document of every topic and event (YAML)."""
    return Response(asyncapi_yaml(_document()), media_type="application/yaml")


@router.get("/schemas/{event_type}.json")
async def event_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of one event type's payload, e.g. cn.medcard.cards.CardLost.v1."""
    schema = _schemas().get(event_type)
    if schema is None:
        raise NotFound(f"unknown event type {event_type!r}; the AsyncAPI document lists every type")
    return schema
