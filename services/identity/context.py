"""What identity's routes work with: its settings, aggregate stores and lookup indexes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.calendar import real_today
from shared.domain import Conflict
from shared.guard import RateLimits
from shared.outbox import AggregateStore
from shared.revocations import TokenRevocations, revoke
from shared.security import SecretBox

from .clock import CLOCK_ID, ClockState
from .config import IdentitySettings
from .domain import InsuredUnit, LoginPolicy, Person, StaffUser
from .followers import ClockFollowers

CLAIM_GRACE = timedelta(minutes=1)


@dataclass
class Identity:
    settings: IdentitySettings
    units: AggregateStore[InsuredUnit]
    persons: AggregateStore[Person]
    staff: AggregateStore[StaffUser]
    clock: AggregateStore[ClockState]
    account_numbers: AsyncCollection[dict[str, Any]]
    """Account number -> person id; written before the person's aggregate."""
    limits: RateLimits
    code_box: SecretBox
    """Seals a one-time code for notifications' SMS channel (the only other holder of the key)."""
    followers: ClockFollowers
    """The services' consumer groups that apply the business clock."""
    revocations: TokenRevocations
    """Tokens refused after a lock or a closure (cardholders' and staff users')."""

    @property
    def login_policy(self) -> LoginPolicy:
        return LoginPolicy(self.settings.login_max_failures, self.settings.login_lock_seconds)

    async def business_date(self) -> date:
        """The clock's business date (the real date in China until it is first advanced)."""
        state = await self.clock.get(CLOCK_ID)
        return state.date if state else real_today()

    async def create_indexes(self) -> None:
        await self.persons.collection.create_index("id_number_digest", unique=True)
        await self.limits.create_indexes()

    async def revoke_tokens(self, key: str, at: datetime) -> None:
        """Refuse the tokens of ``key`` (a person id, or ``staff_subject``) issued at or before ``at``."""
        await revoke(self.revocations.collection, key, at)

    async def release_account_number(self, account_number: str, person_id: str) -> None:
        """Free the number of an account closed at the counter (only if it is still that person's)."""
        await self.account_numbers.delete_one({"_id": account_number, "person_id": person_id})

    async def person_by_digest(self, digest: str) -> Person | None:
        doc = await self.persons.collection.find_one({"id_number_digest": digest}, {"_id": 1})
        return await self.persons.get(doc["_id"]) if doc else None

    async def person_by_account(self, account_number: str) -> Person | None:
        doc = await self.account_numbers.find_one({"_id": account_number})
        person = await self.persons.get(doc["person_id"]) if doc else None
        if person is None or person.account is None or person.account.account_number != account_number:
            return None
        return person

    async def claim_account_number(self, account_number: str, person_id: str) -> None:
        """Reserve an account number for a person. A claim that no account uses a minute
        later (its account was never opened) is taken over."""
        now = datetime.now(UTC)
        try:
            await self.account_numbers.insert_one({"_id": account_number, "person_id": person_id, "claimed_at": now})
            return
        except DuplicateKeyError:
            doc = await self.account_numbers.find_one({"_id": account_number})  # claimed before: by whom?
        if doc is not None and doc["person_id"] == person_id:
            return
        if (doc is None or doc["claimed_at"] > now - CLAIM_GRACE
                or await self.person_by_account(account_number) is not None):
            raise Conflict(f"account number {account_number} is taken")
        res = await self.account_numbers.update_one({"_id": account_number, "person_id": doc["person_id"]},
                                                    {"$set": {"person_id": person_id, "claimed_at": now}})
        if res.matched_count == 0:
            raise Conflict(f"account number {account_number} is taken")


async def identity(request: Request) -> Identity:
    return request.app.state.identity  # type: ignore[no-any-return]


IdentityDep = Annotated[Identity, Depends(identity)]
