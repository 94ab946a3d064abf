"""The access map of every service's HTTP surface, and how to call any operation of it.

Every route a service answers is listed here exactly once: as infrastructure (health,
readiness, metrics, API and event documentation), as deliberately public, or with a
``Guard`` naming the roles it admits. The security tests fail when a route appears that
is in none of these lists, or when a listed one disappears, so the map stays honest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from shared.auth import Role, issue_token
from shared.settings import Settings

ROLES: tuple[Role, ...] = ("cardholder", "clerk", "teller", "operator", "merchant")
STAFF: tuple[Role, ...] = ("clerk", "teller", "operator")
OWNER = "P-owner-of-the-data"
"""The person whose data the placeholder paths name."""
SOMEONE_ELSE = "P-someone-else"
"""The person of the cardholder token that must be refused another person's data."""

Operation = tuple[str, str]
"""(HTTP method, path template as in the OpenAPI document)."""


@dataclass(frozen=True)
class Guard:
    """Who may call a protected operation.

    ``roles``: the roles admitted at all. ``owner``: a cardholder is admitted, but only to
    their own data (the person, card or receipt in the path belongs to them)."""

    roles: tuple[Role, ...]
    owner: bool = False

    def wrong_roles(self) -> tuple[Role, ...]:
        """The roles that must be refused 403 (a cardholder of an owner guard is tested as another person)."""
        admitted = set(self.roles) | ({"cardholder"} if self.owner else set())
        return tuple(r for r in ROLES if r not in admitted)

    def admitted_role(self) -> Role:
        """A role the operation admits: what a token that fails only by its validity carries."""
        return self.roles[0] if self.roles else "cardholder"


PUBLIC = None
"""Marks a deliberately public operation: it needs no token."""

INFRASTRUCTURE: frozenset[Operation] = frozenset({
    ("GET", "/health"), ("GET", "/ready"),
    ("GET", "/asyncapi.json"), ("GET", "/asyncapi.yaml"), ("GET", "/schemas/{event_type}.json"),
    ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect"), ("GET", "/redoc"),
})
"""Routes of every service that reveal and change nobody's data."""

OPS: dict[Operation, Guard | None] = {
    ("GET", "/metrics"): Guard(("operator",)),
    ("GET", "/ops/outbox"): Guard(("operator",)),
    ("GET", "/ops/drain"): Guard(("operator",)),
    ("GET", "/v1/calendar"): PUBLIC,  # served by every service: the business calendar, nobody's data
}

SURFACE: dict[str, dict[Operation, Guard | None]] = {
    "identity": {
        **OPS,
        ("POST", "/v1/units"): Guard(("clerk",)),
        ("GET", "/v1/units/{unit_id}"): Guard(STAFF),
        ("POST", "/v1/persons"): Guard(("clerk",)),
        ("GET", "/v1/persons/{person_id}"): Guard(STAFF, owner=True),
        ("POST", "/v1/contributions"): Guard(("clerk",)),
        ("POST", "/v1/accounts/codes"): PUBLIC,
        ("POST", "/v1/accounts"): PUBLIC,
        ("POST", "/v1/persons/{person_id}/account/recovery"): Guard(("clerk",)),
        ("POST", "/v1/login"): PUBLIC,
        ("POST", "/v1/staff"): Guard(("operator",)),
        ("POST", "/v1/staff/login"): PUBLIC,
        ("GET", "/v1/clock"): PUBLIC,
        ("POST", "/v1/clock/advance"): Guard(("operator",)),
    },
    "cards": {
        **OPS,
        ("POST", "/v1/cards"): Guard(("clerk",)),
        ("GET", "/v1/cards/{card_number}"): Guard(STAFF, owner=True),
        ("GET", "/v1/persons/{person_id}/cards"): Guard(STAFF, owner=True),
        ("POST", "/v1/loss-reports/online"): Guard(("cardholder",)),
        ("POST", "/v1/loss-reports/bank"): Guard(("teller",)),
        ("POST", "/v1/loss-reports/query"): PUBLIC,
        ("POST", "/v1/replacements"): Guard(("clerk",)),
        ("GET", "/v1/replacements/{receipt_number}"): Guard(STAFF, owner=True),
        ("POST", "/v1/replacements/{receipt_number}/collect"): Guard(("clerk",)),
    },
    "bank": {
        **OPS,
        ("GET", "/v1/merchants"): Guard(("operator", "teller", "clerk")),
        ("POST", "/v1/merchants"): Guard(("operator",)),
        ("POST", "/v1/pos/authorisations"): Guard(("merchant", "operator")),
        ("POST", "/v1/pos/balance-inquiries"): Guard(("merchant", "operator")),
        ("PUT", "/v1/cards/{card_number}/password"): Guard(("teller",), owner=True),
        ("POST", "/v1/cards/{card_number}/password/change"): Guard(("teller",), owner=True),
        ("POST", "/v1/cards/{card_number}/password/reset"): Guard(("teller",)),
        ("GET", "/v1/cards/{card_number}/balance"): Guard(("teller",), owner=True),
        ("GET", "/v1/accounts/{person_id}"): Guard(("teller", "operator"), owner=True),
        ("GET", "/v1/accounts/{person_id}/statement"): Guard((), owner=True),
        ("POST", "/v1/accounts/{person_id}/statement"): Guard(("teller",)),
        ("GET", "/v1/contributions/held"): Guard(("teller", "operator")),
        ("GET", "/v1/ledger/totals"): Guard(("operator",)),
        ("POST", "/v1/stamps"): Guard(("teller",)),
    },
    "notifications": {
        **OPS,
        ("GET", "/v1/persons/{person_id}/messages"): Guard(("operator",), owner=True),
        ("GET", "/v1/messages"): Guard(("operator",)),
        ("POST", "/v1/messages/{message_id}/resend"): Guard(("operator",)),
        ("GET", "/v1/recipients/{person_id}"): Guard(("operator",)),
        ("GET", "/v1/sms-gateway"): Guard(("operator",)),
        ("POST", "/v1/sms-gateway/failures"): Guard(("operator",)),
        ("GET", "/v1/sms-gateway/outbox"): Guard(("operator",)),
        ("GET", "/v1/webhooks"): Guard(("operator",)),
        ("POST", "/v1/webhooks"): Guard(("operator",)),
        ("GET", "/v1/webhooks/{webhook_id}"): Guard(("operator",)),
        ("DELETE", "/v1/webhooks/{webhook_id}"): Guard(("operator",)),
        ("GET", "/v1/webhooks/{webhook_id}/deliveries"): Guard(("operator",)),
        ("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/resend"): Guard(("operator",)),
        ("POST", "/v1/webhooks/{webhook_id}/replay"): Guard(("operator",)),
    },
}

PLACEHOLDERS: dict[str, str] = {
    "person_id": OWNER, "card_number": "6216610000000000018", "receipt_number": "R000000000001",
    "unit_id": "U-unknown", "voucher": "V000000000001", "webhook_id": "W-unknown", "delivery_id": "D-unknown",
    "event_type": "CardLost", "message_id": "M" + "0" * 32,
}
"""Plausible path parameter values naming data that does not exist."""

RESOLVED_FIRST = re.compile(r"\{(card_number|receipt_number)\}")
"""A card or receipt must be looked up before its owner is known. A wrong role is refused
(403) before any look-up, for a real number and a placeholder alike; to a cardholder,
another person's card or receipt is concealed: the answer is the 404 of an unknown number,
so numbers cannot be probed."""
OTHER_CARDHOLDER = "cardholder of another person"


def routes_of(app: FastAPI) -> set[Operation]:
    """Every (method, path) the app answers, documented or not (HEAD and OPTIONS aside)."""
    found: set[Operation] = set()
    for route in iter_route_contexts(app.routes):  # included routers flattened, prefixes applied
        assert route.path is not None, f"a route without a path: {route.original_route!r}"
        found |= {(m, route.path) for m in (route.methods or ()) if m not in ("HEAD", "OPTIONS")}
    return found


def protected(service: str) -> list[tuple[Operation, Guard]]:
    """The protected operations of a service, in a stable order."""
    return sorted((op, g) for op, g in SURFACE[service].items() if g is not None)


def example_body(app: FastAPI, op: Operation) -> Any | None:
    """The first documented example of the operation's JSON body, or None when it takes none
    (or is left out of the OpenAPI document, as ``/metrics``)."""
    method, path = op
    spec = app.openapi()
    if path not in spec["paths"]:
        return None
    body = spec["paths"][path][method.lower()].get("requestBody")
    if body is None:
        return None
    schema = body["content"]["application/json"]["schema"]
    name = schema["$ref"].rsplit("/", 1)[-1]
    examples = spec["components"]["schemas"][name].get("examples")
    assert examples, f"{method} {path}: the body schema {name} has no example to send"
    return examples[0]


def fill(path: str, values: dict[str, str]) -> str:
    """The path with every {parameter} replaced; an unknown parameter fails loudly."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in values, f"no plausible value for path parameter {name} of {path}"
        return values[name]
    return re.sub(r"\{([a-z_]+)\}", value, path)


def token(settings: Settings, role: Role, *, person_id: str | None = None, ttl_seconds: int | None = None,
          sub: str = "u-security") -> dict[str, str]:
    """An Authorization header; a cardholder token carries the person id."""
    pid = person_id if role == "cardholder" else None
    issued = issue_token(settings, sub=sub, role=role, person_id=pid, ttl_seconds=ttl_seconds)
    return {"Authorization": f"Bearer {issued}"}


def invalid_credentials(settings: Settings, role: Role) -> dict[str, dict[str, str]]:
    """Credentials that must all be answered 401, for a role the operation would admit."""
    forger = settings.model_copy(update={"jwt_secret": "a-secret-that-identity-never-used-0123456789"})
    return {
        "no token": {},
        "expired token": token(settings, role, person_id=OWNER, ttl_seconds=-10),
        "forged signature": token(forger, role, person_id=OWNER),
        "not a token": {"Authorization": "Bearer not.a.jwt"},
        "basic scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
    }


async def call(client: httpx.AsyncClient, app: FastAPI, op: Operation, values: dict[str, str],
               headers: dict[str, str]) -> httpx.Response:
    """Send the operation with its example body (if any) and the given headers."""
    method, path = op
    body = example_body(app, op)
    return await client.request(method, fill(path, values), headers=headers,
                                **({"json": body} if body is not None else {}))


def describe(service: str, op: Operation, who: str, response: httpx.Response) -> str:
    """One line naming a wrong answer precisely."""
    return f"{service} {op[0]} {op[1]} [{who}] answered {response.status_code}: {response.text[:160]}"
