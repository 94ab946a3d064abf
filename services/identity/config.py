"""Identity's own settings: the operator account created at start-up, whether the
business clock follows the real date, and how long a clock advance waits for the services.

``MEDCARD_IDENTITY_BOOTSTRAP_OPERATOR_PASSWORD`` sets its password. In development,
when unset, it is a random one generated once for the installation and kept with its keys
(``keys.json`` in the state folder, mode 0600); in production it must be set; in tests,
when unset, no bootstrap operator is created.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from shared.keys import KNOWN_KEYS, default_keys_file, installation_keys
from shared.settings import Settings, load_or_exit

OPERATOR_PASSWORD_KEY = "identity_bootstrap_operator_password"
"""Its name in the installation's key file."""
PUBLISHED_PASSWORDS = frozenset({"dev-operator-password", *KNOWN_KEYS})
"""Passwords once published with this project: refused everywhere."""


class IdentitySettings(Settings):
    identity_bootstrap_operator_username: str = "operator"
    identity_bootstrap_operator_password: str | None = None
    identity_clock_follows_real_date: bool | None = None
    """Advance the business clock to the real date in China by itself (checked every
    ``identity_clock_check_seconds``). Unset: on in production (real-time use follows
    today's date), off in development and tests, where the simulation, the tests and
    the README's walkthrough move the clock through ``POST /v1/clock/advance``."""
    identity_clock_check_seconds: float = 60.0
    identity_account_code_seconds: int = 300
    """How long a one-time code for opening an online account lasts."""
    identity_account_code_max_tries: int = 3
    """Wrong codes that void it (a new one must be asked for)."""
    identity_clock_followers_wait_seconds: float = Field(5.0, ge=0, le=60)
    """How long a clock advance waits for every service to apply the new business date
    before it answers; those that have not by then are named in the answer."""

    @model_validator(mode="after")
    def _real_date_clock(self) -> IdentitySettings:
        if self.identity_clock_follows_real_date is None:
            self.identity_clock_follows_real_date = self.environment == "production"
        return self

    @model_validator(mode="after")
    def _bootstrap_password(self) -> IdentitySettings:
        password = self.identity_bootstrap_operator_password
        if password is None and self.environment == "development":
            keys = installation_keys(self.keys_file or default_keys_file(), [OPERATOR_PASSWORD_KEY])
            self.identity_bootstrap_operator_password = keys[OPERATOR_PASSWORD_KEY]
        elif password in PUBLISHED_PASSWORDS:
            raise ValueError("MEDCARD_IDENTITY_BOOTSTRAP_OPERATOR_PASSWORD is a password published with this "
                             "project: set one of your own")
        elif self.environment == "production" and password is None:
            raise ValueError("MEDCARD_IDENTITY_BOOTSTRAP_OPERATOR_PASSWORD must be set in production")
        elif password is not None and len(password) < 8:
            raise ValueError("MEDCARD_IDENTITY_BOOTSTRAP_OPERATOR_PASSWORD must have at least 8 characters")
        return self


def identity_settings(settings: Settings | None) -> IdentitySettings:
    """The identity settings for a base Settings (its values win over the environment)."""
    if isinstance(settings, IdentitySettings):
        return settings
    if settings is None:
        return load_or_exit(IdentitySettings)
    return IdentitySettings(**settings.model_dump())
