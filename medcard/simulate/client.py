"""The simulation's only way into the ecosystem: the services' HTTP APIs."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp


class UnexpectedAnswer(RuntimeError):
    """A service answered something the simulated person did not expect."""


T = TypeVar("T")
CONNECTIONS = 128
"""The keep-alive connections the simulator may hold to each service."""
REQUEST_SECONDS = 60.0
"""The bound on connecting and on each read of an answer."""


@dataclass(frozen=True)
class Answer:
    """A service's answer: its status code and body (and the request, to name it)."""

    status_code: int
    text: str
    request: str = "a request"

    def json(self) -> Any:
        return json.loads(self.text)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise UnexpectedAnswer(f"{self.request} -> {self.status_code}: {self.text[:300]}")


Transport = Callable[[str, str, str, dict[str, str], Any, "dict[str, Any] | None"], Awaitable[Answer]]
"""How a request goes when not over HTTP: (service, method, path, headers, json body, query) -> answer."""


async def once_known(call: Callable[[], Awaitable[T]], unknown: str, within: float = 30.0) -> T:
    """``call()``, retried every 50 ms while the service answers 404: it has not yet applied
    the event that tells it of the thing (another service's event is on its way), for at
    most ``within`` seconds. ``unknown`` names the thing in the error raised when it never
    learns of it."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await call()
        except UnexpectedAnswer as err:
            if " 404:" not in str(err):
                raise
            if time.monotonic() >= deadline:
                raise UnexpectedAnswer(f"the service never learnt of {unknown} in {within:g} s") from err
            await asyncio.sleep(0.05)


READ_500_TRIES = 3
"""How many times a read answered 500 is tried in all before the run reports it (the services
themselves ask DocumentDB again for 10 s when it fails a read with its known glitch:
``shared.database.read_again``)."""
SENSITIVE = frozenset({"password", "pin", "old_pin", "new_pin", "id_number"})
"""Request fields whose values must never show up in events, logs or stored documents."""


CODE_IN_SMS = re.compile(r"(?:验证码|your code to open your online account is )(\d{6})")
"""Where an account-code SMS (Chinese or English) says the code."""


@dataclass
class Ecosystem:
    """HTTP clients for the four services and the tokens of the staff who use them."""

    urls: dict[str, str]
    operator_password: str
    sessions: dict[str, aiohttp.ClientSession] = field(default_factory=dict)
    """One keep-alive session per service (see ``open``)."""
    transport: Transport | None = None
    """Sends the requests instead of the sessions (tests: an app in the same process)."""
    wait_scale: float = 1.0
    """Scales the waits between tries of a request (tests: shorter)."""
    tokens: dict[str, str] = field(default_factory=dict)
    typed: set[str] | None = None
    """When a set: every password, PIN and ID number sent to a service is added to it,
    so that a test can look for them where they must not be (see SENSITIVE)."""
    headers: Callable[[], dict[str, str]] | None = None
    """Headers every request carries besides the token, made afresh for each (a run against
    running services: the proof that lets it past their rate limits, see ``running.py``)."""
    logins: dict[str, Callable[[], Awaitable[str]]] = field(default_factory=dict)
    """How each caller gets a new token (logs in again): a run of hours outlives the tokens
    (``jwt_ttl_seconds``, an hour), and a request refused with ``token_expired`` is sent
    again once with a new one (refused before anything was done: safe for a command too)."""
    _renewing: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def open(self) -> None:
        """A keep-alive aiohttp session per service, made once. The simulator's requests went
        through httpx before: 1.1 ms of CPU per request against aiohttp's 0.16 ms on this
        machine (the same requests to a bare FastAPI app), most of the simulator's CPU in
        the 100,000-person run (py-spy: httpx, httpcore and anyio 63% of its samples)."""
        if self.transport is not None:
            return
        # Idle connections are dropped long before the server's 30 s keep-alive ends, so a
        # request never goes out on a connection the server is closing.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=REQUEST_SECONDS, sock_read=REQUEST_SECONDS)
        for name in self.urls:
            self.sessions[name] = aiohttp.ClientSession(
                timeout=timeout, cookie_jar=aiohttp.DummyCookieJar(),
                connector=aiohttp.TCPConnector(limit=CONNECTIONS, keepalive_timeout=2.0))

    async def close(self) -> None:
        for session in self.sessions.values():
            await session.close()

    async def request(self, service: str, method: str, path: str, *, headers: dict[str, str] | None = None,
                      json: Any = None, params: dict[str, Any] | None = None) -> Answer:
        """One request as it is, answered whatever its status (``call`` judges the answer)."""
        if self.transport is not None:
            return await self.transport(service, method, path, headers or {}, json, params)
        try:
            # The service's URL and the path joined as text, as httpx did: a URL with a path
            # (a service behind a proxy, ``http://gateway/identity``) keeps it.
            async with self.sessions[service].request(method, self.urls[service].rstrip("/") + path,
                                                      headers=headers, json=json, params=params) as resp:
                return Answer(resp.status, await resp.text(), f"{method} {service}{path}")
        except TimeoutError as err:  # aiohttp's own message does not say which request
            raise UnexpectedAnswer(f"{method} {service}{path}: no answer in time ({type(err).__name__})") from err

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def call(self, service: str, method: str, path: str, *, who: str | None = None,
                   expect: tuple[int, ...] = (200, 201), retries: int = 20, **kwargs: Any) -> Any:
        """One request; a 503 (a server briefly unavailable) is retried with backoff when that
        is safe: a read, or a command the service says it did not apply. A command whose
        outcome the service cannot tell (its database connection was lost mid-write) is
        not retried blindly: it could be applied twice. A read that meets a 500 is tried
        ``READ_500_TRIES`` times in all: DocumentDB answers a ``count`` or a read now and then
        with an internal error ("tuple offset out of range: 0") that sticks to one of FerretDB's
        PostgreSQL connections for seconds (37 times in 7 s on day 183 of the 100,000-person
        run); the services ask it again for 10 s themselves before they answer 500, so a few
        tries more here are enough. A read that keeps failing is reported within seconds."""
        if self.typed is not None:
            for values in (kwargs.get("json"), kwargs.get("params")):
                if isinstance(values, dict):
                    self.typed.update(str(v) for k, v in values.items() if k in SENSITIVE and v)
        delay = 0.1 * self.wait_scale
        errors_500 = 0
        renewed = False
        for _ in range(retries):
            token = self.tokens.get(who) if who else None
            headers = {**(self.headers() if self.headers else {}), **(self.auth(who) if who else {})}
            resp = await self.request(service, method, path, headers=headers, **kwargs)
            if resp.status_code == 503:
                if method != "GET" and "nothing was changed" not in resp.text:
                    raise UnexpectedAnswer(f"{method} {service}{path} -> 503 with an unknown outcome: {resp.text[:300]}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0 * self.wait_scale)
                continue
            if resp.status_code == 500 and method == "GET" and errors_500 < READ_500_TRIES - 1:
                errors_500 += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0 * self.wait_scale)
                continue
            if resp.status_code == 401 and who in self.logins and not renewed and "token_expired" in resp.text:
                await self._renew(who, token)
                renewed = True
                continue
            if resp.status_code not in expect:
                raise UnexpectedAnswer(f"{method} {service}{path} -> {resp.status_code}: {resp.text[:300]}")
            return resp.json() if resp.text else None
        raise UnexpectedAnswer(f"{method} {service}{path} kept answering 503")

    async def _renew(self, who: str, expired: str | None) -> None:
        """A new token for ``who``, unless another request has already got one since ``expired``
        was sent (many requests of one caller meet the expiry at once: one login)."""
        async with self._renewing.setdefault(who, asyncio.Lock()):
            if self.tokens.get(who) == expired:
                self.tokens[who] = await self.logins[who]()

    async def login_operator(self) -> None:
        body = {"username": "operator", "password": self.operator_password}

        async def login() -> str:
            return str((await self.call("identity", "POST", "/v1/staff/login", json=body))["access_token"])
        self.tokens["operator"] = await login()
        self.logins["operator"] = login

    async def create_staff(self, username: str, role: str, password: str, merchant_id: str | None = None, *,
                           who: str | None = None) -> None:
        """The staff user (created unless it exists) logged in: its token is kept as ``who``
        (default: the merchant id of a terminal, else the username)."""
        body: dict[str, Any] = {"username": username, "password": password, "role": role}
        if merchant_id:
            body["merchant_id"] = merchant_id
        await self.call("identity", "POST", "/v1/staff", who="operator", json=body, expect=(201, 409))

        async def login() -> str:
            token = await self.call("identity", "POST", "/v1/staff/login",
                                    json={"username": username, "password": password})
            return str(token["access_token"])
        key = who or merchant_id or username
        self.tokens[key] = await login()
        self.logins[key] = login

    async def read_code_sms(self, person_id: str, seen: set[str], timeout: float = 120.0) -> str:
        """The one-time code of the newest account-code SMS to the person that is not in ``seen``
        (message ids), read as the person's phone would: from the SMS the notifications
        gateway simulator delivered to the registered mobile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = await self.call("notifications", "GET", "/v1/sms-gateway/outbox", who="operator",
                                     params={"person_id": person_id, "limit": 500})
            for sms in reversed(answer["data"]):
                found = CODE_IN_SMS.search(sms["text"])
                if found and sms["message_id"] not in seen:
                    seen.add(sms["message_id"])
                    return found.group(1)
            await asyncio.sleep(0.2)
        raise UnexpectedAnswer(f"no account code reached the phone of person {person_id} in {timeout:g} s")

    async def drain_status(self, services: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Each service's drain signal (``/ops/drain``), asked of all at once."""
        return await self._each_service("/ops/drain", services)

    async def outboxes(self, services: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Each service's pending outbox documents as its database counts them (``/ops/outbox``)."""
        return await self._each_service("/ops/outbox", services)

    async def messages_waiting(self) -> int:
        """Whether notifications holds a message still to be sent (0 or 1: one is enough)."""
        answer = await self.call("notifications", "GET", "/v1/messages", who="operator",
                                 params={"status": "pending", "limit": 1})
        return int(answer["count"])

    async def _each_service(self, path: str, services: Iterable[str] | None) -> dict[str, dict[str, Any]]:
        names = list(self.urls if services is None else services)
        answers = await asyncio.gather(*(self.call(s, "GET", path, who="operator") for s in names))
        return dict(zip(names, answers, strict=True))
