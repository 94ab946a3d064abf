"""Tokens: issued by identity, verified anywhere with the shared key."""

from __future__ import annotations

import pytest

from shared.auth import Principal, ensure_owner_or_staff, issue_token, verify_token
from shared.domain import Forbidden, Unauthorized
from shared.settings import Settings

SETTINGS = Settings(environment="test", jwt_secret="x" * 40)


def test_a_token_carries_the_role_and_the_person() -> None:
    token = issue_token(SETTINGS, sub="acct-1", role="cardholder", person_id="P1")
    verified = verify_token(SETTINGS, token)
    assert verified.model_copy(update={"issued_at": None}) == Principal(sub="acct-1", role="cardholder",
                                                                         person_id="P1")


def test_an_expired_token_is_refused() -> None:
    token = issue_token(SETTINGS, sub="u", role="teller", ttl_seconds=-5)
    with pytest.raises(Unauthorized, match="expired"):
        verify_token(SETTINGS, token)


def test_a_forged_signature_is_refused() -> None:
    forged = issue_token(Settings(environment="test", jwt_secret="y" * 40), sub="u", role="operator")
    with pytest.raises(Unauthorized, match="invalid access token"):
        verify_token(SETTINGS, forged)


def test_a_cardholder_reaches_only_their_own_data() -> None:
    me = Principal(sub="a", role="cardholder", person_id="P1")
    ensure_owner_or_staff(me, "P1", "teller")
    with pytest.raises(Forbidden):
        ensure_owner_or_staff(me, "P2", "teller")


def test_staff_roles_are_checked_too() -> None:
    ensure_owner_or_staff(Principal(sub="t", role="teller"), "P1", "teller")
    with pytest.raises(Forbidden):
        ensure_owner_or_staff(Principal(sub="m", role="merchant"), "P1", "teller")


def test_production_refuses_the_development_secret() -> None:
    with pytest.raises(ValueError, match="MEDCARD_JWT_SECRET.* must be set"):
        Settings(environment="production")


async def test_a_verified_pin_is_remembered_and_a_wrong_one_still_fails() -> None:
    from shared.security import VerifiedSecrets, hash_secret

    hashed = hash_secret("123456")
    cache = VerifiedSecrets()
    assert await cache.verify(hashed, "123456")
    assert await cache.verify(hashed, "123456")  # from memory this time
    assert not await cache.verify(hashed, "654321")
    assert not await cache.verify(hash_secret("999999"), "123456")


def test_a_remembered_token_still_expires_and_still_needs_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    token = issue_token(SETTINGS, sub="M-1", role="merchant", ttl_seconds=60)
    assert verify_token(SETTINGS, token).sub == "M-1"
    assert verify_token(SETTINGS, token).sub == "M-1"  # remembered
    with pytest.raises(Unauthorized, match="invalid access token"):  # another key: decoded, refused
        verify_token(Settings(environment="test", jwt_secret="y" * 40), token)
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(Unauthorized, match="expired"):
        verify_token(SETTINGS, token)


def test_a_refused_token_is_not_remembered() -> None:
    forged = issue_token(Settings(environment="test", jwt_secret="y" * 40), sub="u", role="operator")
    for _ in range(2):
        with pytest.raises(Unauthorized, match="invalid access token"):
            verify_token(SETTINGS, forged)
