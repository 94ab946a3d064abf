"""The cards service: the card lifecycle, loss reports and replacement cards.
Run with ``uvicorn --factory services.cards.app:create``."""

from __future__ import annotations

from fastapi import FastAPI

from shared.calendar import BusinessCalendar
from shared.clock import BusinessClock
from shared.service import ServiceRuntime, create_app
from shared.settings import Settings

from .api import routers
from .context import Cards
from shared.guard import RateLimits

from .handlers import make_batch_handler, make_handler
from .model import Cardholder


def create(settings: Settings | None = None) -> FastAPI:
    runtime = ServiceRuntime("cards", settings)
    ctx = Cards(
        settings=runtime.settings,
        holders=runtime.store("cardholders", Cardholder),
        card_index=runtime.db["card_index"],
        voucher_index=runtime.db["voucher_index"],
        receipt_index=runtime.db["receipt_index"],
        clock=BusinessClock(runtime.db),
        calendar=BusinessCalendar.from_setting(runtime.settings.holidays),
        limits=RateLimits(runtime.db["rate_limits"], per_client=runtime.settings.rate_limit_per_client,
                          key=runtime.settings.id_digest_key),
    )

    async def setup() -> None:
        await ctx.clock.load()
        await ctx.holders.collection.create_index("in_production")
        await ctx.limits.create_indexes()

    runtime.setup_hooks.append(setup)
    runtime.business_date = ctx.clock.current
    handle = make_handler(ctx)
    runtime.consume(["identity", "clock", "bank"], handle, batch_handler=make_batch_handler(ctx, handle))
    app = create_app(
        runtime, title="Cards service",
        description="The medical insurance card lifecycle: issue, activation, loss reports online and at the "
                    "bank, replacement cards from application to hand-over.",
        routers=routers,
    )
    app.state.cards = ctx
    return app
