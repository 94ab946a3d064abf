"""The simulator's HTTP client: which answers it tries again and which it reports."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from medcard.simulate.client import READ_500_TRIES, Answer, Ecosystem, Transport, UnexpectedAnswer, once_known


def _in_process(app: FastAPI) -> Transport:
    """The requests to the app in this process (no sockets), answered as over HTTP."""
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://identity")

    async def send(service: str, method: str, path: str, headers: dict[str, str], json: Any,
                   params: dict[str, Any] | None) -> Answer:
        resp = await client.request(method, path, headers=headers, json=json, params=params)
        return Answer(resp.status_code, resp.text)
    return send


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

    eco = Ecosystem({"identity": "http://identity"}, "pw", transport=_in_process(app), wait_scale=0.01)
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


def _guarded() -> tuple[Ecosystem, list[str]]:
    """A service that takes only the token "fresh-N" of the newest login; older ones are
    refused as expired, anything else as invalid."""
    app = FastAPI()
    seen: list[str] = []
    logins = [0]

    @app.post("/command")
    async def command(request: Request) -> JSONResponse:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        seen.append(token)
        if token == f"fresh-{logins[0]}":
            return JSONResponse({"ok": True})
        if token.startswith("fresh-"):
            return JSONResponse({"error": "token_expired", "detail": "access token expired"}, status_code=401)
        return JSONResponse({"error": "unauthorized", "detail": "invalid token"}, status_code=401)

    eco, _ = _eco(failures=0)
    eco.transport = _in_process(app)

    async def login() -> str:
        await asyncio.sleep(0.01)  # the other requests meet the expiry meanwhile
        logins[0] += 1
        return f"fresh-{logins[0]}"
    eco.logins["clerk"] = login
    eco.tokens["clerk"] = "fresh-0"
    return eco, seen


def test_a_request_with_an_expired_token_is_sent_again_once_after_one_login_for_all() -> None:
    eco, seen = _guarded()
    eco.tokens["clerk"] = "fresh-(-1)"  # expired: an hour-long run outlived it

    async def five() -> list[object]:
        return list(await asyncio.gather(*(eco.call("identity", "POST", "/command", who="clerk") for _ in range(5))))
    assert asyncio.run(five()) == [{"ok": True}] * 5
    assert eco.tokens["clerk"] == "fresh-1"  # one login for the five
    assert seen.count("fresh-(-1)") == 5 and seen.count("fresh-1") == 5


def test_an_invalid_token_or_a_caller_without_a_login_is_not_sent_again() -> None:
    eco, seen = _guarded()
    eco.tokens["clerk"] = "forged"
    with pytest.raises(UnexpectedAnswer, match="401"):
        asyncio.run(eco.call("identity", "POST", "/command", who="clerk"))
    assert seen == ["forged"]
    eco.tokens["teller"] = "fresh-(-1)"  # expired, but no way to log in again
    with pytest.raises(UnexpectedAnswer, match="token_expired"):
        asyncio.run(eco.call("identity", "POST", "/command", who="teller"))


def test_a_thing_not_known_yet_is_asked_again_until_known_or_the_wait_is_over() -> None:
    answers = ["404", "404", "ok"]

    async def call() -> str:
        answer = answers.pop(0)
        if answer == "404":
            raise UnexpectedAnswer("PUT bank/v1/cards/1/password -> 404: not found")
        return answer

    assert asyncio.run(once_known(call, "card 1", within=5.0)) == "ok" and answers == []

    async def never() -> str:
        raise UnexpectedAnswer("PUT bank/v1/cards/1/password -> 404: not found")

    async def refused() -> str:
        raise UnexpectedAnswer("PUT bank/v1/cards/1/password -> 409: conflict")

    with pytest.raises(UnexpectedAnswer, match=r"never learnt of card 1 in 0.2 s"):
        asyncio.run(once_known(never, "card 1", within=0.2))
    with pytest.raises(UnexpectedAnswer, match="409"):
        asyncio.run(once_known(refused, "card 1", within=5.0))


def test_an_answer_refused_names_its_request() -> None:
    with pytest.raises(UnexpectedAnswer, match=r"^POST bank/v1/pos/authorisations -> 402: declined"):
        Answer(402, "declined", "POST bank/v1/pos/authorisations").raise_for_status()
    Answer(201, "{}", "POST bank/v1/pos/authorisations").raise_for_status()
