"""Access tokens: issued by identity, verified by every service itself (no call to identity)."""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from .domain import DomainError, Forbidden, Unauthorized
from .settings import Settings, get_settings

Role = Literal["cardholder", "clerk", "teller", "operator", "merchant"]
"""merchant: a POS terminal of a hospital, pharmacy or shop (sub = merchant id)."""
ISSUER = "medcard-identity"
ALGORITHM = "HS256"
STAFF_ROLES: tuple[Role, ...] = ("clerk", "teller", "operator")


class Principal(BaseModel):
    sub: str
    role: Role
    person_id: str | None = None
    issued_at: float | None = None
    """The token's ``iat`` (seconds since the epoch, to the microsecond)."""

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES


def issue_token(settings: Settings, *, sub: str, role: Role, person_id: str | None = None,
                ttl_seconds: int | None = None) -> str:
    now = datetime.now(UTC)
    claims = {
        # iat to the microsecond: a token issued just after a lock is told from one just before
        "iss": ISSUER, "sub": sub, "role": role, "iat": now.timestamp(),
        "exp": now + timedelta(seconds=ttl_seconds if ttl_seconds is not None else settings.jwt_ttl_seconds),
    }
    if person_id:
        claims["pid"] = person_id
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


VERIFIED_TOKENS_SIZE = 10_000
_verified: OrderedDict[tuple[str, str], tuple[Principal, float]] = OrderedDict()
"""Tokens this process has verified: (signing key, token) -> (principal, ``exp``). A token
is the same signed claims every time it is presented, so once its signature, issuer and
claims have passed, a repeat needs only its expiry checked again (as PyJWT would: expired
at ``exp``, its whole seconds). Only tokens that passed are kept; anything else is decoded in full each time."""


def verify_token(settings: Settings, token: str) -> Principal:
    key = (settings.jwt_secret, token)
    known = _verified.get(key)
    if known is not None:
        principal, expires = known
        if expires > time.time():
            _verified.move_to_end(key)
            return principal
        del _verified[key]
        raise Unauthorized("access token expired", code="token_expired")
    principal, expires = _decode(settings, token)
    _verified[key] = (principal, expires)
    if len(_verified) > VERIFIED_TOKENS_SIZE:
        _verified.popitem(last=False)
    return principal


def _decode(settings: Settings, token: str) -> tuple[Principal, float]:
    try:
        claims = jwt.decode(token, settings.jwt_secret, algorithms=[ALGORITHM], issuer=ISSUER,
                            options={"require": ["exp", "iat", "sub", "iss"]})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("access token expired", code="token_expired") from None
    except jwt.PyJWTError as err:
        raise Unauthorized(f"invalid access token: {err}", code="invalid_token") from None
    try:
        return (Principal(sub=claims["sub"], role=claims["role"], person_id=claims.get("pid"),
                          issued_at=float(claims["iat"])), int(claims["exp"]))
    except Exception:
        raise Unauthorized("access token carries no valid role", code="invalid_token") from None


_bearer = HTTPBearer(auto_error=False)


async def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None:
        raise Unauthorized("missing bearer token", code="missing_token")
    settings: Settings = getattr(request.app.state, "settings", None) or get_settings()
    principal = verify_token(settings, credentials.credentials)
    revocations = getattr(request.app.state, "revocations", None)  # shared.revocations.TokenRevocations
    if revocations is not None:
        await revocations.ensure_valid(principal.role, principal.sub, principal.person_id, principal.issued_at)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: Role):  # type: ignore[no-untyped-def]
    """A dependency that admits only the given roles (403 otherwise)."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles:
            raise Forbidden(f"role {principal.role} may not do this; needs one of {', '.join(roles)}")
        return principal

    return check


def ensure_owner_or_staff(principal: Principal, person_id: str, *staff: Role,
                          conceal: DomainError | None = None) -> None:
    """A cardholder acts only on their own data; the listed staff roles on anyone's.

    ``conceal``: what a cardholder is told about someone else's data found by a number
    (a card, a receipt): the very answer an unknown number gets, so that a cardholder
    cannot probe which numbers exist."""
    if principal.role == "cardholder":
        if principal.person_id != person_id:
            raise conceal or Forbidden("a cardholder may act only on their own cards and accounts")
        return
    if principal.role not in staff:
        raise Forbidden(f"role {principal.role} may not do this")
