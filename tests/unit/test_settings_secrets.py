"""No key has a value in the source. Development takes keys the installation generated
(tests: random ones per process); production must be given every key, strong (no short,
repetitive or low-entropy key, none ever published) and all different. A refusal names the
settings and never prints a secret."""

from __future__ import annotations

import secrets

import pytest
from pydantic import ValidationError

from services.notifications.config import NotificationSettings
from shared.keys import KNOWN_KEYS, estimated_bits, is_periodic, key_weakness
from shared.settings import SECRET_SETTINGS, Settings

KEYS = {name: secrets.token_urlsafe(32) for name in SECRET_SETTINGS}
ONE_LETTER = "a" * 40
"""What production accepted before: a 40-character run of one letter."""


def test_no_key_has_a_default_in_the_source() -> None:
    assert all(Settings.model_fields[name].default == "" for name in SECRET_SETTINGS)


def test_tests_get_random_keys_of_their_own_the_same_for_the_whole_process() -> None:
    first, second = Settings(environment="test"), Settings(environment="test")
    values = [getattr(first, name) for name in SECRET_SETTINGS]
    assert all(key_weakness(v) is None for v in values) and len(set(values)) == len(values)
    assert values == [getattr(second, name) for name in SECRET_SETTINGS]
    assert not set(values) & KNOWN_KEYS
    given = Settings(environment="test", jwt_secret=KEYS["jwt_secret"])  # the others: the process's keys
    assert [getattr(given, name) for name in SECRET_SETTINGS[1:]] == values[1:]


def test_production_with_strong_different_keys_starts() -> None:
    settings = Settings(environment="production", **KEYS)
    assert settings.jwt_secret == KEYS["jwt_secret"]


def test_production_refuses_unset_keys_naming_every_one() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(environment="production")
    message = str(refused.value)
    for name in SECRET_SETTINGS:
        assert f"MEDCARD_{name.upper()} is not set" in message
    assert "must be set" in message and "at least 32 characters" in message


@pytest.mark.parametrize("weak", [
    ONE_LETTER, "ab" * 20, "0123456789" * 4, "a-real-but-short-secret-31-char",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabcdefghijklm", *KNOWN_KEYS])
@pytest.mark.parametrize("name", SECRET_SETTINGS)
def test_production_refuses_a_weak_or_published_key_and_never_prints_it(name: str, weak: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(environment="production", **{**KEYS, name: weak})
    message = str(refused.value)
    assert f"MEDCARD_{name.upper()} " in message
    assert weak not in message and all(value not in message for value in KEYS.values())


def test_development_refuses_a_weak_key_given_to_it() -> None:
    with pytest.raises(ValidationError, match="MEDCARD_JWT_SECRET is repetitive"):
        Settings(environment="development", **{**KEYS, "jwt_secret": ONE_LETTER})


def test_the_strength_measures() -> None:
    assert estimated_bits(ONE_LETTER) == 0
    assert estimated_bits(secrets.token_urlsafe(32)) > 150
    assert is_periodic("ab" * 20) and is_periodic("xyz" * 11) and not is_periodic(secrets.token_hex(20))
    assert key_weakness(secrets.token_urlsafe(32)) is None and key_weakness(secrets.token_urlsafe(48)) is None


def test_production_refuses_one_key_used_for_two_purposes() -> None:
    with pytest.raises(ValidationError, match="4 different secrets"):
        Settings(environment="production", **{**KEYS, "id_digest_key": KEYS["jwt_secret"]})


def test_a_service_settings_class_inherits_the_rule() -> None:
    with pytest.raises(ValidationError, match="MEDCARD_WEBHOOK_SECRET_KEY is repetitive"):
        NotificationSettings(environment="production", **{**KEYS, "webhook_secret_key": ONE_LETTER})


def test_the_environment_variables_are_what_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDCARD_ENVIRONMENT", "production")
    for name, value in KEYS.items():
        monkeypatch.setenv(f"MEDCARD_{name.upper()}", value)
    assert Settings().environment == "production"
    monkeypatch.setenv("MEDCARD_JWT_SECRET", "short")
    with pytest.raises(ValidationError, match="MEDCARD_JWT_SECRET has fewer than 32 characters"):
        Settings()


def test_a_rate_that_does_not_parse_is_refused() -> None:
    with pytest.raises(ValidationError, match="not a rate"):
        Settings(environment="test", rate_limit_per_client="lots")
