"""Events the cards service consumes, each turned into one call of the domain:
identity's PersonRegistered (and its locks and closures of online accounts, which refuse
the holder's earlier tokens), the bank's CardPasswordSet, CardBlocked and BankStamped, and
the clock."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.consumer import Handler
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


def make_handler(ctx: Cards) -> Handler:
    async def on_person_registered(event: CloudEvent, data: PersonRegistered) -> None:
        decide = domain.register_holder(person_id=data.person_id, name=data.name,
                                        id_number_digest=data.id_number_digest, mobile=data.mobile)
        await ctx.holders.execute(data.person_id, decide, correlation_id=event.correlationid, cause=event)

    async def on_password_set(event: CloudEvent, data: CardPasswordSet) -> None:
        await ctx.holders.execute(data.person_id, domain.activate(person_id=data.person_id,
                                                                  card_number=data.card_number),
                                  correlation_id=event.correlationid, cause=event)

    async def on_blocked(event: CloudEvent, data: CardBlocked) -> None:
        decide = domain.confirm_block(person_id=data.person_id, card_number=data.card_number,
                                      blocked_at=data.blocked_at)
        outcome = await ctx.holders.execute(data.person_id, decide, correlation_id=event.correlationid, cause=event)
        ctx.blocks.confirmed(data.card_number, outcome.result)  # the loss reports waiting for it answer now

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
        if isinstance(data, PersonRegistered):
            await on_person_registered(event, data)
        elif isinstance(data, CardPasswordSet):
            await on_password_set(event, data)
        elif isinstance(data, CardBlocked):
            await on_blocked(event, data)
        elif isinstance(data, BankStamped):
            await on_stamped(event, data)
        elif isinstance(data, BusinessDateAdvanced):
            await on_date_advanced(event, data)

    return handle
