"""What the cards service does, one function per command and per consumed event.

Commands (called by the routes): issue a card, report a loss online or at the bank,
apply for a replacement and collect it, and the look-ups that go with them.

Events, each turned into one call of the domain: identity's PersonRegistered (and its
locks and closures of online accounts, which refuse the holder's earlier tokens), the
bank's CardPasswordSet, CardBlocked and BankStamped, and the clock."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NamedTuple

from pymongo.errors import DuplicateKeyError

from shared.app import EventHandler, Subscription
from shared.auth import Principal, ensure_owner_or_staff
from shared.database import find_flagged
from shared.domain import NotFound
from shared.events import (
    BankStamped,
    BusinessDateAdvanced,
    CardBlocked,
    CardPasswordSet,
    CloudEvent,
    EventData,
    OnlineAccountClosed,
    OnlineAccountLocked,
    PersonRegistered,
)
from shared.events.cards import LossChannel
from shared.ids import new_card_number, new_reference
from shared.outbox import Outcome
from shared.revocations import project as project_revocation

from . import domain
from .deps import STAFF, Cards, Index
from .domain import Decide, known, unknown
from .model import Card, Cardholder, Presented
from .schemas import CardCreate, LossReportAtBank, LossReportOnline, ReplacementCollect, ReplacementCreate

PLACEHOLDER = "0"
BLOCK_POLL_SECONDS = 0.1
"""How often a loss report waiting for the bank's block reads the cardholder again (the
bank's CardBlocked may be applied by another replica, whose wake-up does not reach it)."""


class HeldCard(NamedTuple):
    """A card and the person who holds it (what an answer about a card shows)."""

    person_id: str
    card: Card


class Reported(NamedTuple):
    """A loss report's outcome: ``new`` (a new voucher) or a repeat of the earlier report,
    and the card as the bank's block left it (or pending, if the wait ran out)."""

    new: bool
    card: Card


# Numbered commands, and the wait for the bank's block

async def reserve(index: Index, make: Callable[[], str], person_id: str) -> str:
    """A fresh number from ``make``, recorded in ``index`` for the person."""
    for _ in range(10):
        number = make()
        try:
            await index.insert_one({"_id": number, "person_id": person_id})
            return number
        except DuplicateKeyError:
            continue
    raise RuntimeError("could not draw an unused number in 10 tries")


async def execute_numbered(ctx: Cards, person_id: str, index: Index, make_number: Callable[[], str],
                           decide_with: Callable[[str], Decide], *, correlation_id: str) -> Outcome[Cardholder]:
    """Run a command that needs a fresh number (card, voucher, receipt).

    A dry run with a placeholder number comes first: a refused command raises before
    any number is drawn, and one that would publish nothing is answered as it stands.
    """
    doc = await ctx.holders.get_doc(person_id)
    dry = decide_with(PLACEHOLDER)(ctx.holders.state_of(doc))
    if not dry.events:
        return Outcome(dry.state, [], dry.result)
    number = await reserve(index, make_number, person_id)
    # The cardholder as the dry run read it (its write is guarded: if it changed since, read again).
    return await ctx.holders.execute(person_id, decide_with(number), correlation_id=correlation_id, loaded=doc)


async def blocked(ctx: Cards, person_id: str, card: Card) -> Card:
    """The card once the bank has confirmed its block (its CardBlocked came back), or as
    it stands after ``loss_block_wait_seconds``: then the block is still pending."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.settings.loss_block_wait_seconds
    with ctx.blocks.watch(card.card_number) as woken:
        while card.bank_blocked_at is None:
            left = deadline - loop.time()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), min(left, BLOCK_POLL_SECONDS))
            woken.clear()
            told = ctx.blocks.blocked.pop(woken, None)
            card = told if told is not None else known(await ctx.holders.get(person_id), person_id).card(
                card.card_number)
    return card


# Cards

async def issue_card(ctx: Cards, body: CardCreate, correlation_id: str) -> Card:
    """Issue a card to a registered person: pending activation until the bank sets its password."""
    today = await ctx.clock.current()
    outcome = await execute_numbered(
        ctx, body.person_id, ctx.card_index, new_card_number,
        lambda number: domain.issue_card(person_id=body.person_id, card_number=number,
                                         agent_bank=body.agent_bank, today=today),
        correlation_id=correlation_id,
    )
    card: Card = outcome.result
    return card


async def find_card(ctx: Cards, principal: Principal, card_number: str) -> HeldCard:
    """One card, to its holder or to staff (another person's card is not found)."""
    person_id = await ctx.person_of(ctx.card_index, card_number, "card")
    ensure_owner_or_staff(principal, person_id, *STAFF, conceal=unknown("card", card_number))
    holder = known(await ctx.holders.get(person_id), person_id)
    return HeldCard(person_id, holder.card(card_number))


async def cards_of_person(ctx: Cards, principal: Principal, person_id: str) -> list[Card]:
    """Every card a person has held, oldest first, to that person or to staff."""
    ensure_owner_or_staff(principal, person_id, *STAFF)
    holder = await ctx.holders.get(person_id)
    if holder is None:
        raise NotFound(f"person {person_id} is not known to the cards service")
    return holder.cards


# Loss reports

async def report_loss(ctx: Cards, *, person_id: str, card_number: str | None, presented: Presented,
                      channel: LossChannel, correlation_id: str, letter_reference: str | None = None) -> Reported:
    """Block the card: a new voucher, or the voucher of the earlier report. Either is told once
    the bank has confirmed the block, or after ``loss_block_wait_seconds`` with the block pending."""
    today, now = await ctx.clock.current(), datetime.now(UTC)
    outcome = await execute_numbered(
        ctx, person_id, ctx.voucher_index, lambda: new_reference("V"),
        lambda voucher: domain.report_loss(person_id=person_id, card_number=card_number, presented=presented,
                                           channel=channel, voucher=voucher, today=today, now=now,
                                           letter_reference=letter_reference),
        correlation_id=correlation_id,
    )
    return Reported(bool(outcome.events), await blocked(ctx, person_id, outcome.result))


async def report_loss_online(ctx: Cards, principal: Principal, body: LossReportOnline,
                             correlation_id: str) -> Reported:
    """The cardholder reports their current card lost: name, ID number and mobile must match."""
    assert principal.person_id is not None
    presented = Presented(id_number_digest=ctx.presented_digest(body.id_number), name=body.name,
                          mobile=body.mobile)
    return await report_loss(ctx, person_id=principal.person_id, card_number=None, presented=presented,
                             channel="online", correlation_id=correlation_id)


async def report_loss_at_bank(ctx: Cards, body: LossReportAtBank, correlation_id: str) -> Reported:
    """A bank teller reports a card lost on the employer's stamped letter of proof and the ID card."""
    person_id = await ctx.person_of(ctx.card_index, body.card_number, "card")
    presented = Presented(id_number_digest=ctx.presented_digest(body.id_number))
    return await report_loss(ctx, person_id=person_id, card_number=body.card_number, presented=presented,
                             channel="bank", correlation_id=correlation_id, letter_reference=body.letter_reference)


async def find_loss_report(ctx: Cards, voucher: str, id_number_digest: str) -> Card:
    """The card a voucher was given for, if the ID number is its holder's (one answer for
    every other case, so that it tells nothing of which part did not match)."""
    doc = await ctx.voucher_index.find_one({"_id": voucher})
    holder = await ctx.holders.get(doc["person_id"]) if doc else None
    card = holder.by_voucher(voucher) if holder else None
    if holder is None or card is None or not hmac.compare_digest(holder.id_number_digest, id_number_digest):
        raise NotFound("no loss report with this voucher number and ID number")
    return card


# Replacements

async def request_replacement(ctx: Cards, body: ReplacementCreate, correlation_id: str) -> HeldCard:
    """Take an application for a replacement card and issue its receipt number."""
    person_id = await ctx.person_of(ctx.card_index, body.card_number, "card")
    presented = Presented(id_number_digest=ctx.presented_digest(body.id_number))
    today = await ctx.clock.current()
    outcome = await execute_numbered(
        ctx, person_id, ctx.receipt_index, lambda: new_reference("R"),
        lambda receipt: domain.request_replacement(person_id=person_id, card_number=body.card_number,
                                                   presented=presented, receipt_number=receipt,
                                                   broken_card=body.broken_card, today=today),
        correlation_id=correlation_id,
    )
    return HeldCard(person_id, outcome.result)


async def find_replacement(ctx: Cards, principal: Principal, receipt_number: str) -> HeldCard:
    """The card a replacement receipt is for, to its holder or to staff."""
    person_id = await ctx.person_of(ctx.receipt_index, receipt_number, "replacement receipt")
    ensure_owner_or_staff(principal, person_id, *STAFF, conceal=unknown("replacement receipt", receipt_number))
    holder = known(await ctx.holders.get(person_id), person_id)
    return HeldCard(person_id, holder.by_receipt(receipt_number))


async def collect_replacement(ctx: Cards, receipt_number: str, body: ReplacementCollect,
                              correlation_id: str) -> HeldCard:
    """Hand out the new card on the receipt and the ID card; the old card is cancelled."""
    person_id = await ctx.person_of(ctx.receipt_index, receipt_number, "replacement receipt")
    presented = Presented(id_number_digest=ctx.presented_digest(body.id_number))
    today = await ctx.clock.current()
    outcome = await execute_numbered(
        ctx, person_id, ctx.card_index, new_card_number,
        lambda number: domain.collect(person_id=person_id, receipt_number=receipt_number, presented=presented,
                                      new_card_number=number, today=today),
        correlation_id=correlation_id,
    )
    return HeldCard(person_id, outcome.result)


# Events

def decision_for(event: CloudEvent) -> Decide | None:
    """The decision an event asks of its person's cardholder aggregate, when it needs
    nothing but that aggregate (None: the event needs more, or nothing)."""
    data = event.data
    match data:
        case PersonRegistered():
            return domain.register_holder(person_id=data.person_id, name=data.name,
                                          id_number_digest=data.id_number_digest, mobile=data.mobile)
        case CardPasswordSet():
            return domain.activate(person_id=data.person_id, card_number=data.card_number)
        case CardBlocked():
            return domain.confirm_block(person_id=data.person_id, card_number=data.card_number,
                                        blocked_at=data.blocked_at)
    return None


async def _decide_for_holder(ctx: Cards, event: CloudEvent) -> Outcome[Cardholder]:
    """An event that needs only its person's cardholder, decided and saved."""
    decide = decision_for(event)
    assert decide is not None
    person_id: str = event.data.person_id  # type: ignore[attr-defined]
    return await ctx.holders.execute(person_id, decide, correlation_id=event.correlationid, cause=event)


async def on_person_registered(ctx: Cards, event: CloudEvent) -> None:
    await _decide_for_holder(ctx, event)


async def on_card_password_set(ctx: Cards, event: CloudEvent) -> None:
    await _decide_for_holder(ctx, event)


async def on_card_blocked(ctx: Cards, event: CloudEvent) -> None:
    data = event.data
    assert isinstance(data, CardBlocked)
    outcome = await _decide_for_holder(ctx, event)
    ctx.blocks.confirmed(data.card_number, outcome.result)  # the loss reports waiting for it answer now, with the card


async def on_bank_stamped(ctx: Cards, event: CloudEvent) -> None:
    data = event.data
    assert isinstance(data, BankStamped)
    voucher = await reserve(ctx.voucher_index, lambda: new_reference("V"), data.person_id)
    decide = domain.start_production(
        person_id=data.person_id, receipt_number=data.receipt_number, stamped_on=data.business_date,
        calendar=ctx.calendar, wait_working_days=ctx.settings.replacement_wait_working_days,
        voucher=voucher, now=datetime.now(UTC), today=await ctx.clock.current(),
    )
    await ctx.holders.execute(data.person_id, decide, correlation_id=event.correlationid, cause=event)


async def on_business_date_advanced(ctx: Cards, event: CloudEvent) -> None:
    data = event.data
    assert isinstance(data, BusinessDateAdvanced)
    await ctx.clock.apply(event)
    producing = await find_flagged(ctx.holders.collection, "in_production", {"_id": 1}).to_list()
    for doc in producing:
        await ctx.holders.execute(doc["_id"], domain.mark_ready(person_id=doc["_id"], today=data.date),
                                  correlation_id=event.correlationid, cause=event)


async def on_online_account_locked(ctx: Cards, event: CloudEvent) -> None:
    """A lock of an online account refuses the holder's earlier tokens."""
    await project_revocation(ctx.holders.collection.database, event)


async def on_online_account_closed(ctx: Cards, event: CloudEvent) -> None:
    """A closure of an online account refuses the holder's earlier tokens."""
    await project_revocation(ctx.holders.collection.database, event)


async def apply_batch(ctx: Cards, events: list[CloudEvent]) -> list[Exception | None]:
    """A fetched batch at once: the events that need only their cardholder (a registration,
    an activation, a confirmed block) decided on each cardholder read once and saved by one
    guarded write per cardholder (``execute_batch``); the others (a stamp, which draws a
    voucher number; the date, which looks at every card in production; a lock or closure)
    through their handlers in ``HANDLERS``, in their place: what came before them in the
    batch is saved first. Events of other types are passed over."""
    errors: list[Exception | None] = [None] * len(events)
    items: list[tuple[str, Decide, CloudEvent]] = []
    where: list[int] = []

    async def flush() -> None:
        for k, applied in zip(where, await ctx.holders.execute_batch(items), strict=True):
            errors[k] = applied.error
            data = events[k].data
            if applied.error is None and isinstance(data, CardBlocked):
                ctx.blocks.confirmed(data.card_number)  # the loss reports waiting for it answer now
        items.clear()
        where.clear()

    for k, event in enumerate(events):
        decide = decision_for(event)
        if decide is None:
            await flush()
            handler = HANDLERS.get(type(event.data))
            if handler is not None:
                await handler(ctx, event)  # a refusal raises: the consumer applies the batch one by one
            continue
        items.append((event.data.person_id, decide, event))  # type: ignore[attr-defined]
        where.append(k)
    await flush()
    return errors


HANDLERS: dict[type[EventData], EventHandler[Cards]] = {
    PersonRegistered: on_person_registered,
    OnlineAccountLocked: on_online_account_locked,
    OnlineAccountClosed: on_online_account_closed,
    CardPasswordSet: on_card_password_set,
    CardBlocked: on_card_blocked,
    BankStamped: on_bank_stamped,
    BusinessDateAdvanced: on_business_date_advanced,
}
CONSUMERS = [Subscription(HANDLERS, batch=apply_batch)]
