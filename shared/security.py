"""Password and PIN hashing (argon2id), and the encryption of secrets a service must read back.

Passwords and PINs are only ever stored as argon2 hashes. Secrets a service has to use
again (a webhook subscription's signing secret) are stored encrypted (:class:`SecretBox`).

The cost defaults to OWASP's argon2id minimum (19 MiB, 2 iterations, 1 lane: ~50 ms
here); ``MEDCARD_ARGON2_MEMORY_KIB`` and ``MEDCARD_ARGON2_TIME_COST`` change it (large
simulations lower it, and say so in their report).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .settings import get_settings


@cache
def _hasher() -> PasswordHasher:
    s = get_settings()
    return PasswordHasher(time_cost=s.argon2_time_cost, memory_cost=s.argon2_memory_kib, parallelism=1)


def hash_secret(secret: str) -> str:
    return _hasher().hash(secret)


_verified = 0
_verified_lock = threading.Lock()


def verifications() -> int:
    """Full argon2 verifications done by this process (the ``medcard_secret_verifications`` metric)."""
    return _verified


def verify_secret(hashed: str, secret: str) -> bool:
    global _verified  # noqa: PLW0603 - one process-wide counter, under its lock
    with _verified_lock:
        _verified += 1
    try:
        return _hasher().verify(hashed, secret)
    except (VerificationError, InvalidHashError):
        return False


@cache
def decoy_hash() -> str:
    return hash_secret(secrets.token_urlsafe(16))


def spend_a_verification(secret: str) -> bool:
    """Verify ``secret`` against a hash of a random secret: always False, and as slow as
    a real verification, so a login to an unknown account costs what a wrong password costs."""
    return verify_secret(decoy_hash(), secret)


async def spend_a_verification_async(secret: str) -> bool:
    return await asyncio.to_thread(spend_a_verification, secret)


async def hash_secret_async(secret: str) -> str:
    """Hash off the event loop (argon2 releases the GIL, so this also uses the second core)."""
    return await asyncio.to_thread(hash_secret, secret)


async def verify_secret_async(hashed: str, secret: str) -> bool:
    return await asyncio.to_thread(verify_secret, hashed, secret)


class VerifiedSecrets:
    """Remembers, in this process's memory only, which secret last verified against a hash.

    A POS terminal presents the same right PIN again and again; verifying each time with
    argon2 (~50 ms) would cap authorisations at ~20 per second per core. After one full
    verification the pair is remembered as an HMAC under a random key that never leaves
    the process; a different (wrong) secret always goes through argon2. The database still
    holds only argon2 hashes.
    """

    def __init__(self, size: int = 200_000) -> None:
        self._key = secrets.token_bytes(32)
        self._seen: OrderedDict[str, bytes] = OrderedDict()
        self._size = size

    def _tag(self, hashed: str, secret: str) -> bytes:
        return hmac.new(self._key, hashed.encode() + b"\0" + secret.encode(), hashlib.sha256).digest()

    async def verify(self, hashed: str, secret: str) -> bool:
        tag = self._tag(hashed, secret)
        known = self._seen.get(hashed)
        if known is not None and hmac.compare_digest(known, tag):
            self._seen.move_to_end(hashed)
            return True
        ok = await verify_secret_async(hashed, secret)
        if ok:
            self._seen[hashed] = tag
            if len(self._seen) > self._size:
                self._seen.popitem(last=False)
        return ok


ONE_TIME_CODE_PURPOSE = "one-time code for the SMS channel"
"""What the one-time-code key (``MEDCARD_OTP_KEY``) is derived for: identity seals a code
with it, notifications' SMS channel opens it."""


class UndecryptableSecret(ValueError):
    """A stored secret that this key cannot open (another key, or tampered with)."""


class SecretBox:
    """Authenticated encryption (AES-256-GCM) of secrets at rest, under a key from settings.

    The key is derived from the setting with HKDF-SHA256 and a purpose label, so one
    setting never serves two purposes. A sealed value is ``v1.`` + base64url(nonce +
    ciphertext + tag); ``bound_to`` (e.g. the record's id) is authenticated with it, so a
    sealed secret copied onto another record does not open. A database dump without the
    key reveals nothing usable.
    """

    VERSION = "v1."

    def __init__(self, key_setting: str, purpose: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=f"medcard {purpose}".encode()).derive(key_setting.encode())
        self._aead = AESGCM(key)

    def seal(self, secret: str, *, bound_to: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = nonce + self._aead.encrypt(nonce, secret.encode(), bound_to.encode())
        return self.VERSION + base64.urlsafe_b64encode(sealed).decode()

    def open(self, sealed: str, *, bound_to: str) -> str:
        if not sealed.startswith(self.VERSION):
            raise UndecryptableSecret("not a sealed secret")
        try:
            raw = base64.urlsafe_b64decode(sealed.removeprefix(self.VERSION))
            return self._aead.decrypt(raw[:12], raw[12:], bound_to.encode()).decode()
        except (binascii.Error, InvalidTag, ValueError):
            raise UndecryptableSecret("the sealed secret does not open with this key") from None
