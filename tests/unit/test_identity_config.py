"""The bootstrap operator's password: none in the source; in development one generated
for the installation and kept with its keys."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.identity.config import PUBLISHED_PASSWORDS, IdentitySettings, identity_settings
from shared.settings import SECRET_SETTINGS, Settings

KEYS = {name: secrets.token_urlsafe(32) for name in SECRET_SETTINGS}
"""Strong, different keys: what production needs."""


def test_development_gets_a_password_generated_for_the_installation(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    settings = IdentitySettings(environment="development", identity_bootstrap_operator_password=None,
                                keys_file=keys_file, **KEYS)
    password = settings.identity_bootstrap_operator_password
    assert password is not None and len(password) >= 32 and password not in PUBLISHED_PASSWORDS
    again = IdentitySettings(environment="development", keys_file=keys_file, **KEYS)
    assert again.identity_bootstrap_operator_password == password
    assert keys_file.stat().st_mode & 0o777 == 0o600


def test_production_refuses_to_start_without_a_password_of_its_own() -> None:
    for password in (None, *PUBLISHED_PASSWORDS):
        with pytest.raises(ValidationError, match="BOOTSTRAP_OPERATOR_PASSWORD"):
            IdentitySettings(environment="production", identity_bootstrap_operator_password=password, **KEYS)


def test_the_published_password_is_refused_in_development_too() -> None:
    with pytest.raises(ValidationError, match="published with this project"):
        IdentitySettings(environment="development", identity_bootstrap_operator_password="dev-operator-password",
                         **KEYS)


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
    off = IdentitySettings(**production, identity_clock_follows_real_date=False)
    assert off.identity_clock_follows_real_date is False
    development = dict(environment="development", identity_bootstrap_operator_password="a-strong-one", **KEYS)
    assert IdentitySettings(**development).identity_clock_follows_real_date is False
    assert identity_settings(Settings(environment="test")).identity_clock_follows_real_date is False
    monkeypatch.setenv("MEDCARD_IDENTITY_CLOCK_FOLLOWS_REAL_DATE", "true")
    assert IdentitySettings(**development).identity_clock_follows_real_date is True
