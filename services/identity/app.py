"""The identity service: the agency's register, online accounts, staff, tokens and the
business clock. Run with ``uvicorn --factory services.identity.app:create``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import FastAPI
from pymongo.errors import PyMongoError

from shared.clock import real_today
from shared.domain import DomainError
from shared.guard import RateLimits
from shared.ids import new_id
from shared.logging import get_logger
from shared.revocations import COLLECTION as REVOCATIONS
from shared.revocations import WITH_STAFF, TokenRevocations
from shared.security import ONE_TIME_CODE_PURPOSE, SecretBox, decoy_hash, hash_secret_async
from shared.service import ServiceRuntime, create_app
from shared.settings import Settings

from .api import routers
from .api.access import staff_key
from .clock import CLOCK_ID, ClockState, catch_up
from .config import IdentitySettings, identity_settings
from .context import Identity
from .domain import InsuredUnit, Person, StaffUser, create_staff
from .followers import ClockFollowers

log = get_logger("identity")
T = TypeVar("T")


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
        await asyncio.sleep(settings.identity_clock_check_seconds)


async def _quietly(step: Awaitable[T]) -> T | None:
    """One check of the real-date clock: a database away or a refused move is logged,
    and the next check tries again."""
    try:
        return await step
    except (PyMongoError, DomainError) as exc:
        log.warning("identity.clock_check_failed", error=str(exc))
        return None


def create(settings: Settings | None = None) -> FastAPI:
    config = identity_settings(settings)
    runtime = ServiceRuntime("identity", config)
    ctx = Identity(
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
    app = create_app(
        runtime, title="Identity service",
        description="The medical insurance agency's register: insured units and persons, online accounts, "
                    "staff users, access tokens, monthly contributions, and the business clock.",
        routers=routers,
    )
    app.state.identity = ctx
    app.state.revocations = ctx.revocations  # identity also refuses a locked staff user's earlier tokens
    return app
