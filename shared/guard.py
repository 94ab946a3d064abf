"""Public routes that could tell who is registered (one-time codes, account opening,
login, the loss-voucher query): rate limits per client and per subject, and answers that
take the same time whatever exists.

Rate limits use the ``limits`` library's fixed-window strategy on a storage of our own in
the service's MongoDB database (``rate_limits``), so that several replicas of a service
count together and a restart forgets nothing. A subject (an ID number, account number or
voucher) is counted under a keyed digest, never in clear; a refusal is a 429 with
``Retry-After`` and the same body whether the subject exists or not.

One caller is let through uncounted: the simulation driving a running installation
(``medcard simulate --identity-url ...``), which plays every cardholder from one address.
It proves it holds the installation's keys with a header (``EXEMPTION_HEADER``): a recent
time and an HMAC of it under a key derived from the services' ID-digest key for this
purpose alone. Without a valid proof nothing changes: the header is ignored and the
request is counted as any other.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import FixedWindowRateLimiter
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, PyMongoError

from .errors import ApiError


EXEMPTION_HEADER = "X-Medcard-Rate-Exemption"
EXEMPTION_PURPOSE = b"medcard rate-limit exemption v1"
"""Mixed into the ID-digest key to make the exemption's own key: a proof never doubles
as an ID number's digest, nor a digest as a proof."""
EXEMPTION_SECONDS = 300
"""How far a proof's time may be from the service's clock: a proof seen on the wire is
of no use for long."""


def exemption_key(key: str) -> bytes:
    """The exemption's key, derived from the installation's ID-digest key."""
    return hmac.new(key.encode(), EXEMPTION_PURPOSE, hashlib.sha256).digest()


def exemption_proof(key: str, now: float | None = None) -> str:
    """The header value that lets a holder of ``key`` past the rate limits: ``<unix
    seconds>.<HMAC-SHA256 of them, hex>``."""
    moment = str(int(time.time() if now is None else now))
    return f"{moment}.{hmac.new(exemption_key(key), moment.encode(), hashlib.sha256).hexdigest()}"


def exemption_holds(key: str, proof: str | None, now: float | None = None) -> bool:
    """Whether ``proof`` was made with ``key`` within ``EXEMPTION_SECONDS`` of ``now``
    (compared in constant time)."""
    if not proof or not key:
        return False
    moment, _, mac = proof.partition(".")
    if not moment.isascii() or not moment.isdigit() or len(moment) > 12:
        return False
    if abs(int(moment) - (time.time() if now is None else now)) > EXEMPTION_SECONDS:
        return False
    expected = hmac.new(exemption_key(key), moment.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), mac.encode(errors="replace"))


class TooManyRequests(ApiError):
    status, code = 429, "too_many_requests"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many requests; try again in {retry_after} s")
        self.headers = {"Retry-After": str(retry_after)}


class MongoLimitStorage(Storage):
    """A ``limits`` storage (fixed windows) in one MongoDB collection: a document per key
    with its count and the end of its window. Only single-document operations that FerretDB
    and MongoDB both support: ``$inc`` on a live window, a guarded reset of an expired one,
    an insert for a new key (a race lost on it is retried)."""

    STORAGE_SCHEME = None

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        super().__init__()
        self.collection = collection

    @property
    def base_exceptions(self) -> type[Exception]:
        return PyMongoError

    async def create_indexes(self) -> None:
        await self.collection.create_index("expires_at", expireAfterSeconds=0)

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        for _ in range(5):
            now = datetime.now(UTC)
            live = await self.collection.find_one_and_update(
                {"_id": key, "expires_at": {"$gt": now}}, {"$inc": {"count": amount}},
                return_document=ReturnDocument.AFTER)
            if live is not None:
                return int(live["count"])
            fresh = {"count": amount, "expires_at": now + timedelta(seconds=expiry)}
            renewed = await self.collection.find_one_and_update(
                {"_id": key, "expires_at": {"$lte": now}}, {"$set": fresh}, return_document=ReturnDocument.AFTER)
            if renewed is not None:
                return int(renewed["count"])
            try:
                await self.collection.insert_one({"_id": key, **fresh})
                return amount
            except DuplicateKeyError:
                continue  # another request created the window meanwhile: count on it
        raise RuntimeError(f"rate limit counter {key} kept changing under five tries")

    async def get(self, key: str) -> int:
        doc = await self.collection.find_one({"_id": key, "expires_at": {"$gt": datetime.now(UTC)}})
        return int(doc["count"]) if doc else 0

    async def get_expiry(self, key: str) -> float:
        doc = await self.collection.find_one({"_id": key})
        expires: datetime = doc["expires_at"] if doc else datetime.now(UTC)
        return (expires if expires.tzinfo else expires.replace(tzinfo=UTC)).timestamp()

    async def check(self) -> bool:
        try:
            await self.collection.database.command("ping")
            return True
        except PyMongoError:
            return False

    async def reset(self) -> int | None:
        return (await self.collection.delete_many({})).deleted_count

    async def clear(self, key: str) -> None:
        await self.collection.delete_one({"_id": key})


class RateLimits:
    """The limits of one service's guarded routes: per client address and per subject."""

    def __init__(self, collection: AsyncCollection[dict[str, Any]], *, per_client: str, key: str) -> None:
        self.storage = MongoLimitStorage(collection)
        self.strategy = FixedWindowRateLimiter(self.storage)
        self.per_client = parse(per_client)
        self._key = key.encode()
        self._exemption = key

    async def create_indexes(self) -> None:
        await self.storage.create_indexes()

    def subject_key(self, kind: str, value: str) -> str:
        """A subject under a keyed digest: the counters never hold an ID number or a voucher."""
        return kind + ":" + hmac.new(self._key, f"{kind}\0{value}".encode(), hashlib.sha256).hexdigest()[:32]

    async def admit(self, route: str, request: Request, *, subject: tuple[str, str] | None = None,
                    per_subject: str | None = None) -> None:
        """Count one request of ``route`` for its client and, given one, its subject
        (``(kind, value)`` under the ``per_subject`` rate); 429 when either is over its limit.
        Both are counted before either is judged, so a refusal costs what an answer does.
        A request proving it holds the installation's keys (``EXEMPTION_HEADER``) is not counted."""
        if exemption_holds(self._exemption, request.headers.get(EXEMPTION_HEADER)):
            return
        client = request.client.host if request.client else "unknown"
        checks: list[tuple[RateLimitItem, tuple[str, ...]]] = [(self.per_client, (route, "client", client))]
        if subject is not None and per_subject is not None:
            checks.append((parse(per_subject), (route, self.subject_key(*subject))))
        # Both counted at once: the client and the subject wait one round trip, not two.
        admitted = await asyncio.gather(*(self.strategy.hit(item, *ids) for item, ids in checks))
        refused = [(item, ids) for (item, ids), ok in zip(checks, admitted, strict=True) if not ok]
        if refused:
            resets = [(await self.strategy.get_window_stats(item, *ids)).reset_time for item, ids in refused]
            raise TooManyRequests(max(1, math.ceil(max(resets) - time.time())))


@asynccontextmanager
async def uniform_answer(seconds: float) -> AsyncIterator[None]:
    """The answer (or refusal) inside leaves no sooner than ``seconds`` after it began, so
    its time does not tell which path it took."""
    started = time.monotonic()
    try:
        yield
    finally:
        await asyncio.sleep(max(0.0, seconds - (time.monotonic() - started)))
