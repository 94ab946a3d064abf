"""Tokens refused after a lock: a cardholder's tokens issued at or before their online
account was locked (too many failed logins) or closed at the counter stop working at
every service, not only when they expire.

Tokens are verified by each service itself, so each keeps a small collection in its own
database (``token_revocations``: ``_id`` = person id, ``not_before`` = the moment of the
last lock or closure). Identity writes it when it locks or closes an account; the other
services project it from identity's OnlineAccountLocked and OnlineAccountClosed events
(the same code rebuilds it from the topic). A token whose ``iat`` is at or before
``not_before`` is refused with 401 ``token_revoked``; a login after the lock issues a
token that works.

Within identity only, a staff user's lock also refuses their earlier tokens (key
``staff:<user id>``): staff locks publish no event, so the other services do not know
of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from .domain import Unauthorized
from .events import CloudEvent, OnlineAccountClosed, OnlineAccountLocked
from .projection import Projection

COLLECTION = "token_revocations"
REVOKED = "access token issued before the online account was locked or closed; log in again"
STAFF_REVOKED = "access token issued before the staff user was locked; log in again"
CARDHOLDER_ONLY: frozenset[str] = frozenset({"cardholder"})
WITH_STAFF: frozenset[str] = frozenset({"cardholder", "clerk", "teller", "operator"})
"""The roles whose tokens identity checks (a merchant token's subject is the merchant,
shared by its terminals: a terminal user's lock does not revoke them)."""


def ceil_to_millisecond(moment: datetime) -> datetime:
    """``moment`` rounded up to the millisecond the database keeps (rounding down would let
    a token issued in the same millisecond, before the lock, through)."""
    extra = moment.microsecond % 1000
    return moment if extra == 0 else moment + timedelta(microseconds=1000 - extra)


def issued_before(issued_at: float | None, not_before: datetime | None) -> bool:
    """Is a token issued at ``issued_at`` (seconds since the epoch, as its ``iat``) refused
    by a revocation at ``not_before``? A token without ``iat`` is refused by any revocation."""
    if not_before is None:
        return False
    if not_before.tzinfo is None:  # the database hands back naive UTC
        not_before = not_before.replace(tzinfo=UTC)
    return issued_at is None or issued_at <= not_before.timestamp()


def staff_subject(user_id: str) -> str:
    """The revocation key of a staff user (never equal to a person id)."""
    return f"staff:{user_id}"


async def revoke(collection: AsyncCollection[dict[str, Any]], key: str, at: datetime) -> None:
    """Refuse the tokens of ``key`` issued at or before ``at``. Idempotent and order-free:
    the later of two revocations holds."""
    await collection.update_one({"_id": key}, {"$max": {"not_before": ceil_to_millisecond(at)}}, upsert=True)


def revocation_of(event: CloudEvent) -> tuple[str, datetime] | None:
    """(person id, moment) that an identity event revokes the tokens of, if any: the moment
    the account was locked or closed (the event's time)."""
    if isinstance(event.data, OnlineAccountLocked | OnlineAccountClosed):
        return event.data.person_id, event.time
    return None


async def project(db: AsyncDatabase[dict[str, Any]], event: CloudEvent) -> None:
    """Apply one identity event to the service's ``token_revocations`` (at most once in
    effect: applying it again changes nothing)."""
    if (found := revocation_of(event)) is not None:
        await revoke(db[COLLECTION], *found)


REVOCATION_PROJECTION = Projection("token_revocations", sources=("identity",), collections=(COLLECTION,),
                                   apply=project)
"""The revocations a service learns from identity's topic."""


class TokenRevocations:
    """The check each service makes of a verified token: one ``find_one`` by key, for the
    tokens of the roles it checks."""

    def __init__(self, collection: AsyncCollection[dict[str, Any]],
                 roles: frozenset[str] = CARDHOLDER_ONLY) -> None:
        self.collection = collection
        self.roles = roles

    async def ensure_valid(self, role: str, sub: str, person_id: str | None, issued_at: float | None) -> None:
        """Raise 401 ``token_revoked`` for a token issued at or before its holder's lock."""
        if role not in self.roles:
            return
        key = person_id if role == "cardholder" else staff_subject(sub)
        if key is None:
            return
        doc = await self.collection.find_one({"_id": key}, {"not_before": 1})
        if doc is not None and issued_before(issued_at, doc.get("not_before")):
            raise Unauthorized(REVOKED if role == "cardholder" else STAFF_REVOKED, code="token_revoked")
