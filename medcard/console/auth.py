"""Operator-only access. The token is verified here with shared.auth (no call to identity);
it comes as a bearer header, the console's cookie, or a ``token`` query parameter (which
EventSource needs, since it cannot set headers)."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import Depends, Request, Response

from shared.auth import Principal, verify_token
from shared.domain import Forbidden, Locked, Unauthorized
from shared.errors import ApiError
from shared.settings import Settings

COOKIE = "medcard_console"


class IdentityUnavailable(ApiError):
    status, code = 503, "identity_unavailable"


def operator_only(settings: Settings, token: str) -> Principal:
    """The token's principal if it is a valid operator token; 401 or 403 otherwise."""
    principal = verify_token(settings, token)
    if principal.role != "operator":
        raise Forbidden(f"role {principal.role} may not use the operators' console; needs operator")
    return principal


def presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(COOKIE) or request.query_params.get("token")


def current_operator(request: Request) -> Principal:
    token = presented_token(request)
    if not token:
        raise Unauthorized("log in first: an operator token is needed (bearer header, cookie or token parameter)",
                           code="missing_token")
    return operator_only(request.app.state.settings, token)


Operator = Annotated[Principal, Depends(current_operator)]


def remember(response: Response, settings: Settings, token: str) -> None:
    """Keep the token in an HttpOnly, same-site cookie so the page and its EventSource send it."""
    response.set_cookie(COOKIE, token, max_age=settings.jwt_ttl_seconds, httponly=True, samesite="strict", path="/")


def forget(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


async def staff_login(identity_url: str, username: str, password: str) -> str:
    """Exchange a staff username and password for a token at identity's POST /v1/staff/login."""
    url = identity_url.rstrip("/") + "/v1/staff/login"
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            resp = await client.post(url, json={"username": username, "password": password})
    except httpx.HTTPError as err:
        raise IdentityUnavailable(f"identity did not answer at {url} ({type(err).__name__}); paste a token instead") \
            from None
    if resp.status_code == 200:
        return str(resp.json()["access_token"])
    if resp.status_code in (401, 423):
        refused = Unauthorized if resp.status_code == 401 else Locked
        raise refused(str(resp.json().get("detail") or "login refused by identity"), code="login_refused")
    raise IdentityUnavailable(f"identity answered {resp.status_code} at {url}; paste a token instead")
