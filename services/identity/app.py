"""The identity service: the agency's register, online accounts, staff, tokens and the
business clock. Run with ``uvicorn --factory services.identity.app:create``."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from shared.ids import new_id
from shared.logging import get_logger
from shared.security import decoy_hash, hash_secret_async
from shared.service import ServiceRuntime, create_app
from shared.settings import Settings

from .api import routers
from .api.access import staff_key
from .clock import ClockState
from .config import IdentitySettings, identity_settings
from .context import Identity
from .domain import InsuredUnit, Person, StaffUser, create_staff

log = get_logger("identity")


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
    )

    async def setup() -> None:
        await ctx.create_indexes()
        await ensure_bootstrap_operator(ctx)
        await asyncio.to_thread(decoy_hash)  # ready before the first login to an unknown account

    runtime.setup_hooks.append(setup)
    app = create_app(
        runtime, title="Identity service",
        description="The medical insurance agency's register: insured units and persons, online accounts, "
                    "staff users, access tokens, monthly contributions, and the business clock.",
        routers=routers,
    )
    app.state.identity = ctx
    return app
