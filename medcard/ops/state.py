"""What each service holds now about one card, read from its HTTP API with an operator token.

One function per service, so the paths are easy to adjust as the APIs move. A service
whose API has no route for the question answers ``n/a``; one that is down, ``unreachable``.
Card states are also reduced to a coarse state (active, lost, cancelled) so that services
that track different detail can be compared, and any disagreement is flagged.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field

from medcard.ports import SERVICE_PORTS
from shared.auth import issue_token
from shared.settings import Settings

Status = Literal["ok", "not found", "n/a", "unreachable", "error"]
Coarse = Literal["active", "lost", "cancelled"]
CARDS_COARSE: dict[str, Coarse] = {
    "pending_activation": "active", "active": "active", "lost": "lost", "replacement_requested": "lost",
    "in_production": "lost", "replacement_ready": "lost", "cancelled": "cancelled",
}


def default_urls() -> dict[str, str]:
    return {name: f"http://127.0.0.1:{port}" for name, port in SERVICE_PORTS.items()}


class ServiceState(BaseModel):
    service: str
    status: Status
    card_state: str | None = Field(None, description="The card's state in this service's own words")
    coarse: Coarse | None = Field(None, description="active, lost or cancelled: comparable across services")
    tracks_loss: bool = Field(True, description="False when the service only knows active or cancelled")
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
    state = str(body.get("state"))
    loss = body.get("loss") or {}
    return ServiceState(service="cards", status="ok", card_state=state, coarse=CARDS_COARSE.get(state), facts={
        "person_id": body.get("person_id"), "replaces": body.get("replaces"), "replaced_by": body.get("replaced_by"),
        "loss_voucher": loss.get("voucher"), "receipt_number": body.get("receipt_number")})


async def bank_state(asked: Asked) -> ServiceState:
    """bank holds the account and its cards: GET /v1/accounts/{person_id}."""
    if asked.person is None:
        return _no_holder("bank")
    failed, body = await _get(asked, "bank", f"/v1/accounts/{asked.person}")
    if failed:
        return failed
    card = next((c for c in body.get("cards") or [] if c.get("number") == asked.card), None)
    facts = {"balance_fen": body.get("balance_fen"), "current_card": body.get("current_card"),
             "password_locked": body.get("password_locked")}
    if card is None:
        return ServiceState(service="bank", status="not found",
                            facts={**facts, "detail": "the account has no such card"})
    status = str(card.get("status"))
    coarse: Coarse | None = status if status in ("active", "lost", "cancelled") else None  # type: ignore[assignment]
    return ServiceState(service="bank", status="ok", card_state=status, coarse=coarse,
                        facts={**facts, "blocked_at": card.get("blocked_at")})


async def notifications_state(asked: Asked) -> ServiceState:
    """notifications knows which cards reach a person: GET /v1/recipients/{person_id}."""
    if asked.person is None:
        return _no_holder("notifications")
    failed, body = await _get(asked, "notifications", f"/v1/recipients/{asked.person}")
    if failed:
        return failed
    state = (body.get("cards") or {}).get(asked.card)
    if state is None:
        return ServiceState(service="notifications", status="not found", tracks_loss=False,
                            facts={"detail": "the recipient has no such card"})
    return ServiceState(service="notifications", status="ok", card_state=str(state), tracks_loss=False,
                        coarse="cancelled" if state == "cancelled" else "active")


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
    """Where the services' views of the card differ, in plain words."""
    known = [s for s in states if s.coarse is not None]
    found: list[str] = []
    loss_aware = [s for s in known if s.tracks_loss]
    if len({s.coarse for s in loss_aware}) > 1:
        found.append(", ".join(f"{s.service} says {s.coarse}" for s in loss_aware))
    for other in (s for s in known if not s.tracks_loss):
        differing = [s for s in loss_aware if (s.coarse == "cancelled") != (other.coarse == "cancelled")]
        if differing:
            found.append(f"{other.service} says {other.coarse}, "
                         + ", ".join(f"{s.service} says {s.coarse}" for s in differing))
    if known:
        found += [f"{s.service} does not know the card, {known[0].service} says {known[0].coarse}"
                  for s in states if s.status == "not found" and s.service != "identity"]
    return found
