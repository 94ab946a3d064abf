"""Password and PIN hashing (argon2id). Secrets are only ever stored as these hashes."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP's argon2id minimum: 19 MiB, 2 iterations, 1 lane.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(hashed: str, secret: str) -> bool:
    try:
        return _hasher.verify(hashed, secret)
    except (VerificationError, InvalidHashError):
        return False


async def hash_secret_async(secret: str) -> str:
    """Hash off the event loop (argon2 releases the GIL, so this also uses the second core)."""
    return await asyncio.to_thread(hash_secret, secret)


async def verify_secret_async(hashed: str, secret: str) -> bool:
    return await asyncio.to_thread(verify_secret, hashed, secret)
