"""What identity's routes and handlers work with: its settings, aggregate stores and lookup
indexes (the ``Identity`` context, wired on the runtime with its start-up and background
jobs), and the FastAPI dependencies its routes take: the context and the roles they admit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Self, TypeVar

from fastapi import Depends, Request
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, PyMongoError

from shared.auth import CurrentPrincipal, Principal, require_roles
from shared.bounded import stop_if_cancelled
from shared.calendar import real_today
from shared.domain import Conflict, DomainError
from shared.guard import RateLimits
from shared.ids import new_id
from shared.logging import get_logger
from shared.outbox import AggregateStore
from shared.revocations import COLLECTION as REVOCATIONS
from shared.revocations import WITH_STAFF, TokenRevocations, revoke
from shared.security import ONE_TIME_CODE_PURPOSE, SecretBox, decoy_hash, hash_secret_async
from shared.service import ServiceRuntime
from shared.settings import Settings

from .clock import CLOCK_ID, ClockState, catch_up
from .config import IdentitySettings, identity_settings
from .domain import InsuredUnit, LoginPolicy, Person, StaffUser, create_staff, staff_key
from .followers import ClockFollowers

log = get_logger("identity")
T = TypeVar("T")
CLAIM_GRACE = timedelta(minutes=1)
KNOWN_UNITS_LIMIT = 100_000
"""At most this many units are remembered (then the others are read each time)."""


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
    known_units: dict[str, InsuredUnit] = field(default_factory=dict)
    """Registered units as read: a unit is registered once and never changed or removed
    (``domain.register_unit``; the API has no route that would), so one found once needs no
    second read (each registration of a person checks its unit). An unknown one is read
    every time (it may be registered meanwhile)."""

    @classmethod
    def configure(cls, settings: Settings | None) -> Settings:
        return identity_settings(settings)

    @classmethod
    def wire(cls, runtime: ServiceRuntime) -> Self:
        config = identity_settings(runtime.settings)
        ctx = cls(
            settings=config,
            units=runtime.store("units", InsuredUnit),
            persons=runtime.store("persons", Person),
            staff=runtime.store("staff", StaffUser),
            clock=runtime.store("business_clock", ClockState),
            account_numbers=runtime.db["account_numbers"],
            limits=RateLimits(runtime.db["rate_limits"], per_client=config.rate_limit_per_client,
                              key=config.id_digest_key),
            code_box=SecretBox(config.otp_key, ONE_TIME_CODE_PURPOSE),
            followers=ClockFollowers(config),
            revocations=TokenRevocations(runtime.db[REVOCATIONS], roles=WITH_STAFF),
        )

        async def setup() -> None:
            await ctx.create_indexes()
            await ensure_bootstrap_operator(ctx)
            await asyncio.to_thread(decoy_hash)  # ready before the first login to an unknown account

        runtime.setup_hooks.append(setup)
        runtime.stop_hooks.append(ctx.followers.close)
        runtime.business_date = ctx.business_date
        if config.identity_clock_follows_real_date:
            runtime.background.append(lambda: follow_real_date(ctx))
        return ctx

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

    async def unit(self, unit_id: str) -> InsuredUnit | None:
        """A registered unit (None when it is not registered)."""
        if (unit := self.known_units.get(unit_id)) is not None:
            return unit
        unit = await self.units.get(unit_id)
        if unit is not None and len(self.known_units) < KNOWN_UNITS_LIMIT:
            self.known_units[unit_id] = unit
        return unit

    async def person_by_digest(self, digest: str) -> Person | None:
        found = await self.person_doc_by_digest(digest)
        return found[0] if found else None

    async def person_doc_by_digest(self, digest: str) -> tuple[Person, dict[str, Any]] | None:
        """The person registered with the ID number of this digest, and their document as
        read: a command on them passes it to ``execute`` (``loaded``) instead of reading it again."""
        doc = await self.persons.collection.find_one({"id_number_digest": digest})
        person = self.persons.state_of(doc)
        return (person, doc) if person is not None and doc is not None else None

    async def person_by_account(self, account_number: str) -> Person | None:
        found = await self.holder_of(account_number)
        return found[0] if found else None

    async def holder_of(self, account_number: str) -> tuple[Person, dict[str, Any]] | None:
        """The person whose online account has this number, and their document as read."""
        claim = await self.account_numbers.find_one({"_id": account_number})
        doc = await self.persons.get_doc(claim["person_id"]) if claim else None
        person = self.persons.state_of(doc)
        if person is None or doc is None or person.account is None or person.account.account_number != account_number:
            return None
        return person, doc

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


async def ensure_bootstrap_operator(ctx: Identity) -> None:
    """Create the first operator from the settings, once; an existing one is left alone."""
    settings: IdentitySettings = ctx.settings
    password = settings.identity_bootstrap_operator_password
    key = staff_key(settings.identity_bootstrap_operator_username)
    if password is None or await ctx.staff.get(key) is not None:
        return
    user = StaffUser(user_id=new_id("S"), username=settings.identity_bootstrap_operator_username, role="operator",
                     password_hash=await hash_secret_async(password))
    await ctx.staff.execute(key, create_staff(user), correlation_id="bootstrap")
    log.info("identity.bootstrap_operator_created", username=user.username)


async def follow_real_date(ctx: Identity) -> None:
    """Keep the business clock on the real date: each check that finds it behind
    advances it (a BusinessDateAdvanced per day, a MonthEnded per month left). Several
    replicas may run this: the clock's one document is written under its revision."""
    settings: IdentitySettings = ctx.settings
    while True:
        today = real_today()
        state = await _quietly(ctx.clock.get(CLOCK_ID))
        if state is None or state.date < today:
            moved = await _quietly(ctx.clock.execute(CLOCK_ID, catch_up(today=today),
                                                     correlation_id=f"clock-{today}"))
            if moved is not None and moved.events:
                log.info("identity.clock_followed_real_date", date=str(today), events=len(moved.events))
        stop_if_cancelled()  # the check may have swallowed it (pymongo)
        await asyncio.sleep(settings.identity_clock_check_seconds)


async def _quietly(step: Awaitable[T]) -> T | None:
    """One check of the real-date clock: a database away or a refused move is logged,
    and the next check tries again."""
    try:
        return await step
    except (PyMongoError, DomainError) as exc:
        log.warning("identity.clock_check_failed", error=str(exc))
        return None


async def identity_of(request: Request) -> Identity:
    """The service's context (async: FastAPI runs a plain function in a worker thread)."""
    return request.app.state.context  # type: ignore[no-any-return]


IdentityDep = Annotated[Identity, Depends(identity_of)]
Anyone = CurrentPrincipal
"""Any signed-in principal: the route then checks whose data it is."""
Clerk = Annotated[Principal, Depends(require_roles("clerk"))]
Operator = Annotated[Principal, Depends(require_roles("operator"))]
Staff = Annotated[Principal, Depends(require_roles("clerk", "teller", "operator"))]
"""Agency and bank staff (not a merchant's terminal)."""
