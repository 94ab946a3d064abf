"""What the cards service's routes and handlers work with: the cardholder store, the
indexes from card, voucher and receipt numbers to the cardholder, and the business clock;
and the FastAPI dependencies that hand them, and the caller of each role, to a route."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Self

from fastapi import Depends, Request
from pymongo.asynchronous.collection import AsyncCollection

from shared.app import configure
from shared.auth import Principal, Role, require_roles
from shared.calendar import BusinessCalendar
from shared.clock import BusinessClock
from shared.database import flag_index
from shared.guard import RateLimits
from shared.ids import presented_digest
from shared.outbox import AggregateStore
from shared.service import ServiceRuntime
from shared.settings import Settings

from .domain import unknown
from .model import Card, Cardholder

Index = AsyncCollection[dict[str, Any]]
"""Number -> person id. Written before the cardholder's document, so every number the
aggregate holds is found; an entry whose write to the aggregate failed is never matched."""


class BlockWatch:
    """Wakes, in this process, the loss reports waiting for the bank to block a card."""

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self.blocked: dict[asyncio.Event, Card] = {}
        """The card as the confirmation left it, for each woken waiter told so."""

    def confirmed(self, card_number: str, card: Card | None = None) -> None:
        """Wake the reports waiting for ``card_number``; ``card``: the card as the applied
        CardBlocked left it (the waiters then need not read the cardholder again)."""
        for woken in self._waiting.get(card_number, ()):
            if card is not None and card.bank_blocked_at is not None:
                self.blocked[woken] = card
            woken.set()

    @contextlib.contextmanager
    def watch(self, card_number: str) -> Iterator[asyncio.Event]:
        woken = asyncio.Event()
        self._waiting.setdefault(card_number, set()).add(woken)
        try:
            yield woken
        finally:
            self.blocked.pop(woken, None)
            waiting = self._waiting[card_number]
            waiting.discard(woken)
            if not waiting:
                del self._waiting[card_number]


@dataclass
class Cards:
    settings: Settings
    holders: AggregateStore[Cardholder]
    card_index: Index
    voucher_index: Index
    receipt_index: Index
    clock: BusinessClock
    calendar: BusinessCalendar
    limits: RateLimits
    """Of the public loss-voucher query: per client and per voucher."""
    blocks: BlockWatch = field(default_factory=BlockWatch)

    @classmethod
    def configure(cls, settings: Settings | None) -> Settings:
        return configure(settings)

    @classmethod
    def wire(cls, runtime: ServiceRuntime) -> Self:
        ctx = cls(
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
            await flag_index(ctx.holders.collection, "in_production")
            await ctx.limits.create_indexes()

        runtime.setup_hooks.append(setup)
        runtime.business_date = ctx.clock.current
        return ctx

    def presented_digest(self, id_number: str) -> str:
        """The digest of an ID number shown at a counter or online; 422 if it is malformed."""
        return presented_digest(self.settings.id_digest_key, id_number)

    async def person_of(self, index: Index, number: str, what: str) -> str:
        doc = await index.find_one({"_id": number})
        if doc is None:
            raise unknown(what, number)
        return str(doc["person_id"])


async def cards_of(request: Request) -> Cards:
    """The service's context (async: FastAPI runs a plain function in a worker thread)."""
    return request.app.state.context  # type: ignore[no-any-return]


CardsDep = Annotated[Cards, Depends(cards_of)]

STAFF: tuple[Role, ...] = ("clerk", "teller", "operator")
"""Agency and bank staff: they see any cardholder's cards and replacements."""
Clerk = Annotated[Principal, Depends(require_roles("clerk"))]
Teller = Annotated[Principal, Depends(require_roles("teller"))]
CardholderRole = Annotated[Principal, Depends(require_roles("cardholder"))]
HolderOrStaff = Annotated[Principal, Depends(require_roles("cardholder", *STAFF))]
