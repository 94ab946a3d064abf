"""The contract router serves the same documents as the committed files (in-process, no servers)."""

from __future__ import annotations

import json

import httpx
import yaml

from shared.contract.generate import CONTRACT_DIR
from shared.contract.router import router
from shared.service import ServiceRuntime, create_app
from shared.settings import Settings


def client() -> httpx.AsyncClient:
    """A service app with the contract mounted, as every service has it (lifespan not run: no I/O)."""
    app = create_app(ServiceRuntime("contract", Settings(environment="test")), title="t", description="d",
                     routers=[router])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://contract")


async def test_the_asyncapi_document_is_served_as_json_and_yaml() -> None:
    committed = json.loads((CONTRACT_DIR / "asyncapi.json").read_text(encoding="utf-8"))
    async with client() as c:
        as_json, as_yaml = await c.get("/asyncapi.json"), await c.get("/asyncapi.yaml")
    assert as_json.status_code == 200 and as_json.json() == committed
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(as_yaml.text) == committed


async def test_each_event_schema_is_served_and_an_unknown_type_is_404() -> None:
    name = "cn.medcard.bank.MonthlyTransfer.v1"
    committed = json.loads((CONTRACT_DIR / "schemas" / f"{name}.json").read_text(encoding="utf-8"))
    async with client() as c:
        found, missing = await c.get(f"/schemas/{name}.json"), await c.get("/schemas/cn.medcard.bank.Nope.v1.json")
    assert found.status_code == 200 and found.json() == committed
    assert missing.status_code == 404 and "unknown event type" in missing.json()["detail"]
