"""Identity's own settings: the operator account created at start-up, whether the
business clock follows the real date, and how long a clock advance waits for the services.

``MEDCARD_IDENTITY_BOOTSTRAP_OPERATOR_PASSWORD`` sets its password. In development
it defaults to ``DEV_OPERATOR_PASSWORD`` (``dev-operator-password``); in production it
must be set; in tests, when unset, no bootstrap operator is created.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from shared.settings import Settings, load_or_exit

DEV_OPERATOR_PASSWORD = "dev-operator-password"


class IdentitySettings(Settings):
    identity_bootstrap_operator_username: str = "operator"
    identity_bootstrap_operator_password: str | None = None
    identity_clock_follows_real_date: bool | None = None
    """Advance the business clock to the real date in China by itself (checked every
    ``identity_clock_check_seconds``). Unset: on in production (real-time use follows
    today's date), off in development and tests, where the simulation, the tests and
    the README's walkthrough move the clock through ``POST /v1/clock/advance``."""
    identity_clock_check_seconds: float = 60.0
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
            self.identity_bootstrap_operator_password = DEV_OPERATOR_PASSWORD
        elif self.environment == "production" and (password is None or password == DEV_OPERATOR_PASSWORD):
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
