"""What the cards service's routes and handlers work with: the cardholder store, the
indexes from card, voucher and receipt numbers to the cardholder, and the business clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.calendar import BusinessCalendar
from shared.clock import BusinessClock
from shared.domain import Invalid
from shared.guard import RateLimits
from shared.ids import InvalidIdNumber, id_digest, validate_id_number
from shared.outbox import AggregateStore, Outcome
from shared.settings import Settings

from .domain import Decide, known, unknown
from .model import Card, Cardholder

Index = AsyncCollection[dict[str, Any]]
"""Number -> person id. Written before the cardholder's document, so every number the
aggregate holds is found; an entry whose write to the aggregate failed is never matched."""
PLACEHOLDER = "0"
BLOCK_POLL_SECONDS = 0.1
"""How often a loss report waiting for the bank's block reads the cardholder again (the
bank's CardBlocked may be applied by another replica, whose wake-up does not reach it)."""


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

    def presented_digest(self, id_number: str) -> str:
        """The digest of an ID number shown at a counter or online; 422 if it is malformed."""
        try:
            return id_digest(self.settings.id_digest_key, validate_id_number(id_number))
        except InvalidIdNumber as err:
            raise Invalid(str(err)) from None

    async def reserve(self, index: Index, make: Callable[[], str], person_id: str) -> str:
        """A fresh number from ``make``, recorded in ``index`` for the person."""
        for _ in range(10):
            number = make()
            try:
                await index.insert_one({"_id": number, "person_id": person_id})
                return number
            except DuplicateKeyError:
                continue
        raise RuntimeError("could not draw an unused number in 10 tries")

    async def execute_numbered(self, person_id: str, index: Index, make_number: Callable[[], str],
                               decide_with: Callable[[str], Decide], *, correlation_id: str) -> Outcome[Cardholder]:
        """Run a command that needs a fresh number (card, voucher, receipt).

        A dry run with a placeholder number comes first: a refused command raises before
        any number is drawn, and one that would publish nothing is answered as it stands.
        """
        doc = await self.holders.get_doc(person_id)
        dry = decide_with(PLACEHOLDER)(self.holders.state_of(doc))
        if not dry.events:
            return Outcome(dry.state, [], dry.result)
        number = await self.reserve(index, make_number, person_id)
        # The cardholder as the dry run read it (its write is guarded: if it changed since, read again).
        return await self.holders.execute(person_id, decide_with(number), correlation_id=correlation_id, loaded=doc)

    async def blocked(self, person_id: str, card: Card) -> Card:
        """The card once the bank has confirmed its block (its CardBlocked came back), or as
        it stands after ``loss_block_wait_seconds``: then the block is still pending."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.loss_block_wait_seconds
        with self.blocks.watch(card.card_number) as woken:
            while card.bank_blocked_at is None:
                left = deadline - loop.time()
                if left <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), min(left, BLOCK_POLL_SECONDS))
                woken.clear()
                told = self.blocks.blocked.pop(woken, None)
                card = told if told is not None else known(await self.holders.get(person_id), person_id).card(
                    card.card_number)
        return card

    async def person_of(self, index: Index, number: str, what: str) -> str:
        doc = await index.find_one({"_id": number})
        if doc is None:
            raise unknown(what, number)
        return str(doc["person_id"])


async def cards(request: Request) -> Cards:
    return request.app.state.cards  # type: ignore[no-any-return]


CardsDep = Annotated[Cards, Depends(cards)]
