"""Events the cards service consumes, each turned into one call of the domain:
identity's PersonRegistered (and its locks and closures of online accounts, which refuse
the holder's earlier tokens), the bank's CardPasswordSet, CardBlocked and BankStamped, and
the clock."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.consumer import BatchHandler, Handler
from shared.events import (
    BankStamped,
    BusinessDateAdvanced,
    CardBlocked,
    CardPasswordSet,
    CloudEvent,
    PersonRegistered,
)
from shared.ids import new_reference
from shared.revocations import project as project_revocation

from . import domain
from .context import Cards
from .domain import Decide


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


def make_handler(ctx: Cards) -> Handler:
    async def on_holder(event: CloudEvent, data: PersonRegistered | CardPasswordSet | CardBlocked) -> None:
        decide = decision_for(event)
        assert decide is not None
        outcome = await ctx.holders.execute(data.person_id, decide, correlation_id=event.correlationid, cause=event)
        if isinstance(data, CardBlocked):  # the loss reports waiting for it answer now, with the card
            ctx.blocks.confirmed(data.card_number, outcome.result)

    async def on_stamped(event: CloudEvent, data: BankStamped) -> None:
        voucher = await ctx.reserve(ctx.voucher_index, lambda: new_reference("V"), data.person_id)
        decide = domain.start_production(
            person_id=data.person_id, receipt_number=data.receipt_number, stamped_on=data.business_date,
            calendar=ctx.calendar, wait_working_days=ctx.settings.replacement_wait_working_days,
            voucher=voucher, now=datetime.now(UTC), today=await ctx.clock.current(),
        )
        await ctx.holders.execute(data.person_id, decide, correlation_id=event.correlationid, cause=event)

    async def on_date_advanced(event: CloudEvent, data: BusinessDateAdvanced) -> None:
        await ctx.clock.apply(event)
        producing = await ctx.holders.collection.find({"in_production": True}, {"_id": 1}).to_list()
        for doc in producing:
            await ctx.holders.execute(doc["_id"], domain.mark_ready(person_id=doc["_id"], today=data.date),
                                      correlation_id=event.correlationid, cause=event)

    async def handle(event: CloudEvent) -> None:
        data = event.data
        await project_revocation(ctx.holders.collection.database, event)  # a lock or closure refuses old tokens
        if isinstance(data, PersonRegistered | CardPasswordSet | CardBlocked):
            await on_holder(event, data)
        elif isinstance(data, BankStamped):
            await on_stamped(event, data)
        elif isinstance(data, BusinessDateAdvanced):
            await on_date_advanced(event, data)

    return handle


def make_batch_handler(ctx: Cards, handle: Handler) -> BatchHandler:
    """A fetched batch at once: the events that need only their cardholder (a registration,
    an activation, a confirmed block) decided on each cardholder read once and saved by one
    guarded write per cardholder (``execute_batch``); the others (a stamp, which draws a
    voucher number; the date, which looks at every card in production) through ``handle``,
    in their place: what came before them in the batch is saved first."""

    async def handle_batch(events: list[CloudEvent]) -> list[Exception | None]:
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
                await handle(event)  # a refusal raises: the consumer applies the batch one by one
                continue
            await project_revocation(ctx.holders.collection.database, event)
            items.append((event.data.person_id, decide, event))  # type: ignore[attr-defined]
            where.append(k)
        await flush()
        return errors

    return handle_batch
