"""Settings of the notifications service, on top of the shared ones (same MEDCARD_ prefix)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from shared.settings import Settings, load_or_exit

from .targets import Networks, parse_networks


class NotificationSettings(Settings):
    """Delivery channel and retry policy of SMS and webhooks."""

    sms_channel: Literal["simulator", "http"] = "simulator"
    """simulator: record each SMS in the service's database; http: POST it to ``sms_http_url``."""
    sms_http_url: str = ""
    sms_http_timeout_seconds: float = 10.0
    sms_fail_next: int = 0
    """The simulator fails this many sends after start-up (drills and tests)."""
    sms_max_attempts: int = 5
    sms_backoff_seconds: float = 2.0
    """Delay before the first retry; doubles with each further attempt."""
    sms_backoff_max_seconds: float = 300.0
    sms_gather_seconds: float = Field(0.5, ge=0, le=10)
    """A message that is not urgent waits at most this long for others to go out with it in
    one dispatch pass (a pass costs about six database commands, whatever its size); an
    urgent one (a one-time code, a fraud alert) goes at once."""
    sms_scan_seconds: float = Field(30.0, gt=0, le=300)
    """How often a dispatch pass looks for every due message (those left by a crash or by
    another replica); in between, a pass takes the messages this process was told of (created,
    released by their recipient's details, resent by an operator, due again after a failed
    attempt's backoff), read by id. The look for every due message reads the status index,
    which holds every dead version of a message until the next vacuum (50,000 entries a look in
    the 100,000-person run)."""
    webhook_timeout_seconds: float = 10.0
    webhook_backoff_seconds: float = 1.0
    webhook_backoff_max_seconds: float = 300.0
    """Webhook deliveries are retried until they succeed, at most this far apart."""
    webhook_allowed_networks: str = ""
    """Comma-separated IP networks webhooks may reach although they are internal (loopback,
    private, link-local...): empty by default, ``127.0.0.0/8`` for a receiver on this machine
    in development and tests. See ``targets``."""
    worker_poll_seconds: float = 0.5

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @property
    def allowed_networks(self) -> Networks:
        """``webhook_allowed_networks``, parsed."""
        return parse_networks(self.webhook_allowed_networks)

    @model_validator(mode="after")
    def _http_channel_needs_url(self) -> NotificationSettings:
        if self.sms_channel == "http" and not self.sms_http_url.startswith(("http://", "https://")):
            raise ValueError("MEDCARD_SMS_HTTP_URL must be an http(s) URL when MEDCARD_SMS_CHANNEL=http")
        return self


def notification_settings(settings: Settings | None) -> NotificationSettings:
    """The service's settings: given ones (upgraded, keeping their values) or from the environment."""
    if isinstance(settings, NotificationSettings):
        return settings
    if settings is None:
        return load_or_exit(NotificationSettings)
    return NotificationSettings(**settings.model_dump())
