"""The simulator's HTTP client: which answers it tries again and which it reports."""

from __future__ import annotations

import asyncio
import itertools

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from medcard.simulate.client import READ_500_TRIES, Ecosystem, UnexpectedAnswer


def _eco(failures: int) -> tuple[Ecosystem, list[str]]:
    app = FastAPI()
    seen: list[str] = []

    @app.get("/count")
    async def count() -> JSONResponse:
        seen.append("GET")
        if len(seen) <= failures:
            return JSONResponse({"error": "internal"}, status_code=500)
        return JSONResponse({"pending": 0})

    @app.post("/command")
    async def command() -> JSONResponse:
        seen.append("POST")
        return JSONResponse({"error": "internal"}, status_code=500)

    eco = Ecosystem({"identity": "http://identity"}, "pw")
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://identity")
    eco.pools["identity"], eco.clients["identity"] = [client], client
    eco._turn["identity"] = itertools.cycle([client])
    return eco, seen


def test_a_read_answered_500_once_is_read_again() -> None:
    eco, seen = _eco(failures=READ_500_TRIES - 1)
    assert asyncio.run(eco.call("identity", "GET", "/count")) == {"pending": 0}
    assert seen == ["GET"] * READ_500_TRIES


def test_a_read_that_keeps_failing_and_a_command_that_fails_are_reported() -> None:
    eco, seen = _eco(failures=READ_500_TRIES)
    with pytest.raises(UnexpectedAnswer, match="500"):
        asyncio.run(eco.call("identity", "GET", "/count"))
    assert seen == ["GET"] * READ_500_TRIES
    eco, seen = _eco(failures=0)
    with pytest.raises(UnexpectedAnswer, match="500"):
        asyncio.run(eco.call("identity", "POST", "/command"))
    assert seen == ["POST"], "a command is never sent twice on a 500: it may have been applied"
