"""Settings shared by every service: one env prefix (MEDCARD_), local defaults."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Literal, TypeVar

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-signing-key-change-me-0123456789"
SECRET_SETTINGS = ("jwt_secret", "webhook_secret_key", "id_digest_key")
"""The keys: token signing, webhook secret encryption, ID number digests."""
MIN_SECRET_LENGTH = 32
RELAXED_ENVIRONMENTS = ("development", "test")
"""Where the documented development secrets may be used; anywhere else they are refused."""


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
    jwt_secret: str = DEV_SECRET
    jwt_ttl_seconds: int = 3600
    webhook_secret_key: str = DEV_SECRET
    id_digest_key: str = DEV_SECRET
    """Key of the HMAC that lets services compare ID numbers without publishing them."""
    relay_poll_seconds: float = 0.5
    relay_scan_seconds: float = 30.0
    """How often the relay scans for pending events it was not told about (crash recovery)."""
    login_max_failures: int = 5
    login_lock_seconds: int = 900
    pin_max_failures: int = 3
    replacement_wait_working_days: int = 15
    loss_block_wait_seconds: float = Field(0.5, ge=0, le=10)
    """How long a loss report waits for the bank's CardBlocked before it answers the block
    as pending (cards)."""
    holidays: str = ""
    """Extra public holidays, comma-separated ISO dates, on top of the fixed ones."""
    argon2_memory_kib: int = 19 * 1024
    argon2_time_cost: int = 2
    max_body_bytes: int = 64 * 1024
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _no_default_secret_outside_development(self) -> Settings:
        """Outside development and tests every key must be set, strong, and different."""
        if self.environment in RELAXED_ENVIRONMENTS:
            return self
        weak = [name for name in SECRET_SETTINGS
                if getattr(self, name) == DEV_SECRET or len(getattr(self, name)) < MIN_SECRET_LENGTH]
        if weak:
            names = ", ".join(f"MEDCARD_{name.upper()}" for name in weak)
            raise ValueError(f"{names} must be set to a secret of its own, at least {MIN_SECRET_LENGTH} characters "
                             f"(not the development default), when MEDCARD_ENVIRONMENT={self.environment}")
        if len({getattr(self, name) for name in SECRET_SETTINGS}) < len(SECRET_SETTINGS):
            names = ", ".join(f"MEDCARD_{name.upper()}" for name in SECRET_SETTINGS)
            raise ValueError(f"{names} must be three different secrets when MEDCARD_ENVIRONMENT={self.environment}")
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
