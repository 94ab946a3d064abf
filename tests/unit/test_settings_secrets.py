"""The three keys (token signing, webhook secret encryption, ID digests) have usable
defaults only in development and tests; anywhere else a default, short or shared key is
refused with a message naming the settings, and the refusal never prints a secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.notifications.config import NotificationSettings
from shared.settings import DEV_SECRET, SECRET_SETTINGS, Settings

KEYS = {"jwt_secret": "j" * 40, "webhook_secret_key": "w" * 40, "id_digest_key": "d" * 40}


def test_development_and_tests_may_use_the_documented_defaults() -> None:
    for environment in ("development", "test"):
        settings = Settings(environment=environment)
        assert all(getattr(settings, name) == DEV_SECRET for name in SECRET_SETTINGS)


def test_production_with_three_strong_different_keys_starts() -> None:
    settings = Settings(environment="production", **KEYS)
    assert settings.jwt_secret == KEYS["jwt_secret"]


def test_production_refuses_the_defaults_naming_every_key() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(environment="production")
    message = str(refused.value)
    for name in ("MEDCARD_JWT_SECRET", "MEDCARD_WEBHOOK_SECRET_KEY", "MEDCARD_ID_DIGEST_KEY"):
        assert name in message
    assert "at least 32 characters" in message and DEV_SECRET not in message


@pytest.mark.parametrize("name", SECRET_SETTINGS)
def test_production_refuses_one_default_or_short_key_and_never_prints_it(name: str) -> None:
    short = "a-real-but-short-secret-31-char"
    assert len(short) == 31
    for value in (DEV_SECRET, short):
        with pytest.raises(ValidationError) as refused:
            Settings(environment="production", **{**KEYS, name: value})
        message = str(refused.value)
        assert f"MEDCARD_{name.upper()} must be set" in message
        assert value not in message and KEYS[name] not in message
        others = [n for n in SECRET_SETTINGS if n != name]
        assert all(KEYS[o] not in message for o in others)


def test_production_refuses_one_key_used_for_two_purposes() -> None:
    with pytest.raises(ValidationError, match="three different secrets"):
        Settings(environment="production", **{**KEYS, "id_digest_key": KEYS["jwt_secret"]})


def test_a_service_settings_class_inherits_the_rule() -> None:
    with pytest.raises(ValidationError, match="MEDCARD_WEBHOOK_SECRET_KEY must be set"):
        NotificationSettings(environment="production", **{**KEYS, "webhook_secret_key": DEV_SECRET})


def test_the_environment_variables_are_what_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDCARD_ENVIRONMENT", "production")
    for name, value in KEYS.items():
        monkeypatch.setenv(f"MEDCARD_{name.upper()}", value)
    assert Settings().environment == "production"
    monkeypatch.setenv("MEDCARD_JWT_SECRET", "short")
    with pytest.raises(ValidationError, match="MEDCARD_JWT_SECRET must be set"):
        Settings()
