"""Settings shared by every service: one env prefix (MEDCARD_), local defaults."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-signing-key-change-me-0123456789"


class Settings(BaseSettings):
    """Read from MEDCARD_* environment variables (or a .env file)."""

    model_config = SettingsConfigDict(env_prefix="MEDCARD_", env_file=".env", extra="ignore")

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
    holidays: str = ""
    """Extra public holidays, comma-separated ISO dates, on top of the fixed ones."""
    argon2_memory_kib: int = 19 * 1024
    argon2_time_cost: int = 2
    max_body_bytes: int = 64 * 1024
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _no_default_secret_outside_development(self) -> Settings:
        if self.environment == "production":
            for name in ("jwt_secret", "webhook_secret_key", "id_digest_key"):
                if getattr(self, name) == DEV_SECRET or len(getattr(self, name)) < 32:
                    raise ValueError(f"MEDCARD_{name.upper()} must be set to a strong secret (32+ chars) in production")
        return self

    def database(self, service: str) -> str:
        return f"{self.namespace}_{service}"

    def group_id(self, service: str) -> str:
        return f"{self.namespace}.{service}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
