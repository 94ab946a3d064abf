"""What each service holds now about one card, read from its HTTP API with an operator token.

One function per service, so the paths are easy to adjust as the APIs move. A service
whose API has no route for the question answers ``n/a``; one that is down, ``unreachable``.
cards, bank and notifications each tell the card's ``state`` in the one vocabulary they
share (``shared.card_state``), so they are compared exactly, and any difference is flagged.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field

from medcard.ports import SERVICE_PORTS
from shared.auth import issue_token
from shared.card_state import CARD_STATES
from shared.settings import Settings

Status = Literal["ok", "not found", "n/a", "unreachable", "error"]


def default_urls() -> dict[str, str]:
    return {name: f"http://127.0.0.1:{port}" for name, port in SERVICE_PORTS.items()}


class ServiceState(BaseModel):
    service: str
    status: Status
    card_state: str | None = Field(None, description="The card's state in the vocabulary the services share: "
                                                      + ", ".join(CARD_STATES))
    facts: dict[str, Any] = {}


@dataclass(frozen=True)
class Asked:
    """One question to one service: its client and base URL, the card and its holder."""

    client: httpx.AsyncClient
    url: str
    card: str
    person: str | None


async def _get(asked: Asked, service: str, path: str) -> tuple[ServiceState | None, dict[str, Any]]:
    """The JSON body, or the state to report when there is none (route missing, 404, down)."""
    try:
        resp = await asked.client.get(asked.url.rstrip("/") + path)
    except httpx.HTTPError as err:
        return ServiceState(service=service, status="unreachable", facts={"error": f"{type(err).__name__}: {err}"}), {}
    body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
    if resp.status_code in (404, 405) and body.get("detail") in ("Not Found", "Method Not Allowed"):
        return ServiceState(service=service, status="n/a", facts={"why": f"no route GET {path}"}), {}
    if resp.status_code == 404:
        return ServiceState(service=service, status="not found", facts={"detail": body.get("detail")}), {}
    if resp.status_code != 200:
        return ServiceState(service=service, status="error",
                            facts={"http_status": resp.status_code, "detail": body.get("detail")}), {}
    return None, body


def _no_holder(service: str) -> ServiceState:
    return ServiceState(service=service, status="n/a", facts={"why": "the card's holder is unknown"})


async def identity_state(asked: Asked) -> ServiceState:
    """identity knows the holder, not the card: GET /v1/persons/{person_id}."""
    if asked.person is None:
        return _no_holder("identity")
    failed, body = await _get(asked, "identity", f"/v1/persons/{asked.person}")
    return failed or ServiceState(service="identity", status="ok", facts={
        "person_id": body.get("person_id"), "online_account": body.get("account_number"),
        "contribution_months": len(body.get("contribution_months") or [])})


async def cards_state(asked: Asked) -> ServiceState:
    """cards holds the lifecycle: GET /v1/cards/{card_number}."""
    failed, body = await _get(asked, "cards", f"/v1/cards/{asked.card}")
    if failed:
        return failed
    loss = body.get("loss") or {}
    return ServiceState(service="cards", status="ok", card_state=str(body.get("state")), facts={
        "person_id": body.get("person_id"), "replaces": body.get("replaces"), "replaced_by": body.get("replaced_by"),
        "loss_voucher": loss.get("voucher"), "receipt_number": body.get("receipt_number"),
        "replacement_status": body.get("replacement_status")})


async def bank_state(asked: Asked) -> ServiceState:
    """bank holds the account and its cards: GET /v1/accounts/{person_id}."""
    if asked.person is None:
        return _no_holder("bank")
    failed, body = await _get(asked, "bank", f"/v1/accounts/{asked.person}")
    if failed:
        return failed
    card = next((c for c in body.get("cards") or [] if c.get("card_number") == asked.card), None)
    facts = {"balance_fen": body.get("balance_fen"), "current_card": body.get("current_card"),
             "password_locked": body.get("password_locked")}
    if card is None:
        return ServiceState(service="bank", status="not found",
                            facts={**facts, "detail": "the account has no such card"})
    return ServiceState(service="bank", status="ok", card_state=str(card.get("state")),
                        facts={**facts, "blocked_at": card.get("blocked_at")})


async def notifications_state(asked: Asked) -> ServiceState:
    """notifications knows which cards reach a person: GET /v1/recipients/{person_id}."""
    if asked.person is None:
        return _no_holder("notifications")
    failed, body = await _get(asked, "notifications", f"/v1/recipients/{asked.person}")
    if failed:
        return failed
    card = next((c for c in body.get("cards") or [] if c.get("card_number") == asked.card), None)
    if card is None:
        return ServiceState(service="notifications", status="not found",
                            facts={"detail": "the recipient has no such card"})
    return ServiceState(service="notifications", status="ok", card_state=str(card.get("state")))


async def service_states(settings: Settings, urls: dict[str, str], card: str, person: str | None,
                         timeout: float = 5.0) -> list[ServiceState]:
    """Ask the four services, cards first (it also names the holder when no event did)."""
    token = issue_token(settings, sub="ops", role="operator")
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=timeout) as client:
        cards = await cards_state(Asked(client, urls["cards"], card, person))
        person = person or cards.facts.get("person_id")
        others = await asyncio.gather(*(
            fetch(Asked(client, urls[name], card, person))
            for name, fetch in (("identity", identity_state), ("bank", bank_state),
                                ("notifications", notifications_state))
        ))
    return [others[0], cards, *others[1:]]


def disagreements(states: list[ServiceState]) -> list[str]:
    """Where the services' states of the card differ, in plain words: every service that
    tells a state must tell the same one, and every service that should know the card must."""
    known = [s for s in states if s.card_state is not None]
    found: list[str] = []
    if len({s.card_state for s in known}) > 1:
        found.append(", ".join(f"{s.service} says {s.card_state}" for s in known))
    if known:
        found += [f"{s.service} does not know the card, {known[0].service} says {known[0].card_state}"
                  for s in states if s.status == "not found" and s.service != "identity"]
    return found
