"""The bootstrap operator's password: a documented default in development only."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.identity.config import DEV_OPERATOR_PASSWORD, IdentitySettings, identity_settings
from shared.settings import Settings

KEYS = {"jwt_secret": "j" * 40, "webhook_secret_key": "w" * 40, "id_digest_key": "d" * 40}
"""Three strong, different keys: what production needs."""


def test_development_gets_the_documented_dev_password() -> None:
    settings = IdentitySettings(environment="development", identity_bootstrap_operator_password=None)
    assert settings.identity_bootstrap_operator_password == DEV_OPERATOR_PASSWORD


def test_production_refuses_to_start_without_a_password_of_its_own() -> None:
    for password in (None, DEV_OPERATOR_PASSWORD):
        with pytest.raises(ValidationError, match="BOOTSTRAP_OPERATOR_PASSWORD"):
            IdentitySettings(environment="production", identity_bootstrap_operator_password=password, **KEYS)


def test_tests_create_no_bootstrap_operator_unless_told_to() -> None:
    settings = identity_settings(Settings(environment="test", namespace="t-config"))
    assert settings.identity_bootstrap_operator_password is None
    assert settings.namespace == "t-config"


def test_a_short_password_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 8"):
        IdentitySettings(environment="test", identity_bootstrap_operator_password="short")


def test_the_clock_follows_the_real_date_in_production_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDCARD_IDENTITY_CLOCK_FOLLOWS_REAL_DATE", raising=False)
    production = dict(environment="production", identity_bootstrap_operator_password="a-strong-one", **KEYS)
    assert IdentitySettings(**production).identity_clock_follows_real_date is True
    assert IdentitySettings(**production, identity_clock_follows_real_date=False).identity_clock_follows_real_date is False
    assert IdentitySettings(environment="development").identity_clock_follows_real_date is False
    assert identity_settings(Settings(environment="test")).identity_clock_follows_real_date is False
    monkeypatch.setenv("MEDCARD_IDENTITY_CLOCK_FOLLOWS_REAL_DATE", "true")
    assert IdentitySettings(environment="development").identity_clock_follows_real_date is True
