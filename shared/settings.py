"""Settings shared by every service: one env prefix (MEDCARD_), local defaults."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Literal, TypeVar

from limits import parse as parse_rate
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .keys import default_keys_file, installation_keys, key_weakness, process_keys

SECRET_SETTINGS = ("jwt_secret", "webhook_secret_key", "id_digest_key", "otp_key")
"""The keys: token signing, webhook secret encryption, ID number digests, one-time codes
sealed for the SMS channel. None has a value in the source (``shared/keys.py``)."""


class Settings(BaseSettings):
    """Read from MEDCARD_* environment variables (or a .env file)."""

    # hide_input_in_errors: a refused setting must not print the secrets it was given.
    model_config = SettingsConfigDict(env_prefix="MEDCARD_", env_file=".env", extra="ignore",
                                      hide_input_in_errors=True)

    environment: Literal["development", "test", "production"] = "development"
    namespace: str = "medcard"
    """Prefix of topics, consumer groups and database names; tests use their own."""
    kafka_bootstrap: str = "127.0.0.1:19092"
    mongo_url: str = "mongodb://127.0.0.1:27027/"
    jwt_secret: str = ""
    jwt_ttl_seconds: int = 3600
    webhook_secret_key: str = ""
    id_digest_key: str = ""
    """Key of the HMAC that lets services compare ID numbers without publishing them."""
    otp_key: str = ""
    """Key that seals a one-time code from identity for notifications' SMS channel."""
    keys_file: Path | None = None
    """Development: where the installation's generated keys are kept (default: ``keys.json``
    in the state folder, ``$MEDCARD_STATE_DIR`` or ``.state/stack``)."""
    relay_poll_seconds: float = 0.5
    relay_scan_seconds: float = 30.0
    """How often the relay scans for pending events it was not told about (crash recovery)."""
    login_max_failures: int = 5
    login_lock_seconds: int = 900
    pin_max_failures: int = 3
    replacement_wait_working_days: int = 15
    bank_loss_propagation: Literal["instant", "nightly"] = "instant"
    """When the bank applies a loss report: ``instant`` (as soon as its CardLost arrives) or
    ``nightly`` (the day's reports in one batch when the business day ends, as many legacy
    bank links do: the policy ``medcard compare`` weighs)."""
    loss_block_wait_seconds: float = Field(0.5, ge=0, le=10)
    """How long a loss report waits for the bank's CardBlocked before it answers the block
    as pending (cards)."""
    holidays: str = ""
    """Extra public holidays, comma-separated ISO dates, each optionally named (``2027-02-06=Spring
    Festival``), on top of the fixed ones; GET /v1/calendar lists them."""
    argon2_memory_kib: int = 19 * 1024
    argon2_time_cost: int = 2
    max_body_bytes: int = 64 * 1024
    rate_limit_per_client: str = "60/minute"
    """Requests from one client address to each public route that could tell who is registered
    (one-time codes, account opening, login, the loss-voucher query); ``limits`` notation."""
    rate_limit_per_id_number: str = "10/hour"
    """One-time codes asked for and account openings tried, per ID number."""
    rate_limit_per_account_number: str = "30/hour"
    """Logins tried per account number (on top of the lock after repeated failures)."""
    rate_limit_per_voucher: str = "10/hour"
    """Loss-voucher queries per voucher number."""
    uniform_answer_seconds: float = 0.25
    """Those public routes answer no sooner than this, found or not found, so that the time
    of an answer does not tell whether a person, an account or a voucher exists."""
    log_level: str = "INFO"

    @field_validator("rate_limit_per_client", "rate_limit_per_id_number", "rate_limit_per_account_number",
                     "rate_limit_per_voucher")
    @classmethod
    def _rate(cls, value: str) -> str:
        try:
            parse_rate(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate such as '60/minute' or '10 per hour'") from None
        return value

    @model_validator(mode="after")
    def _keys(self) -> Settings:
        """Keys not set come from the installation's key file (development) or are random for
        the process (tests); in production each must be set. Outside tests every key must be
        strong, and the keys different."""
        unset = tuple(name for name in SECRET_SETTINGS if not getattr(self, name))
        if unset and self.environment == "development":
            for name, value in installation_keys(self.keys_file or default_keys_file(), unset).items():
                setattr(self, name, value)
        elif unset and self.environment == "test":
            for name, value in process_keys(unset).items():
                setattr(self, name, value)
        if self.environment == "test":
            return self
        problems = [f"MEDCARD_{name.upper()} is not set" if not getattr(self, name)
                    else f"MEDCARD_{name.upper()} {weakness}"
                    for name in SECRET_SETTINGS if (weakness := key_weakness(getattr(self, name))) is not None]
        if problems:
            raise ValueError(f"{'; '.join(problems)}: each key must be set to a random secret of its own, at least "
                             f"32 characters, when MEDCARD_ENVIRONMENT={self.environment}")
        if len({getattr(self, name) for name in SECRET_SETTINGS}) < len(SECRET_SETTINGS):
            names = ", ".join(f"MEDCARD_{name.upper()}" for name in SECRET_SETTINGS)
            raise ValueError(f"{names} must be {len(SECRET_SETTINGS)} different secrets when "
                             f"MEDCARD_ENVIRONMENT={self.environment}")
        return self

    def database(self, service: str) -> str:
        return f"{self.namespace}_{service}"

    def group_id(self, service: str) -> str:
        return f"{self.namespace}.{service}"


T = TypeVar("T", bound=Settings)


def load_or_exit(load: Callable[[], T]) -> T:
    """Settings from the environment; refused ones stop the process with one line per
    problem (no traceback, no values: they may be secrets)."""
    try:
        return load()
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) + ': ' if e['loc'] else ''}"
            f"{e['msg'].removeprefix('Value error, ')}" for e in err.errors())
        raise SystemExit(f"medcard: refusing to start: {problems}") from None


@lru_cache
def get_settings() -> Settings:
    return load_or_exit(Settings)
