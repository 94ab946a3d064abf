"""Standard Webhooks signatures: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.

The secret is ``whsec_`` + base64 of random bytes; the signature is
``v1,`` + base64(HMAC-SHA256(secret bytes, f"{id}.{timestamp}.{body}")).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

PREFIX = "whsec_"
SECRET_BYTES = 24
"""Bytes of a generated secret, and the fewest a given one must have."""
MIN_DISTINCT_BYTES = 16
"""24 random bytes have about 23 different values (fewer than 16: about once in 10^13)."""


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The key bytes of a ``whsec_`` secret; ValueError saying why it is unusable."""
    if not secret.startswith(PREFIX):
        raise ValueError(f"a webhook secret starts with {PREFIX}")
    try:
        key = base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except binascii.Error:
        raise ValueError(f"a webhook secret is {PREFIX} followed by base64") from None
    if not 16 <= len(key) <= 64:
        raise ValueError("a webhook secret must encode 16 to 64 bytes")
    return key


def check_new_secret(secret: str) -> str:
    """A secret given for a new subscription: ``whsec_`` + base64 of at least ``SECRET_BYTES``
    random bytes (not a run of one value, not text such as a password); ValueError saying why."""
    key = secret_key(secret)
    if len(key) < SECRET_BYTES:
        raise ValueError(f"a webhook secret must encode at least {SECRET_BYTES} random bytes")
    if len(set(key)) < MIN_DISTINCT_BYTES or all(32 <= b < 127 for b in key):
        raise ValueError(f"a webhook secret must be random bytes (such as {SECRET_BYTES} from a CSPRNG), "
                         "not a pattern or text")
    return secret


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret_key(secret), signed, hashlib.sha256).digest()).decode()


def signed_headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one signed delivery (structured-mode CloudEvent body)."""
    return {
        "content-type": "application/cloudevents+json; charset=utf-8",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, webhook_id, timestamp, body),
    }
