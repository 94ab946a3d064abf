"""Consumed events -> domain decisions through the account store. Every call passes
``cause=event``, so a repeated or older event changes nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from shared.events import (
    BusinessDateAdvanced,
    CardCancelled,
    CardIssued,
    CardLost,
    CloudEvent,
    ContributionPaid,
    MonthEnded,
    PersonRegistered,
    ReplacementRequested,
)
from shared.logging import get_logger
from shared.outbox import BATCH_GROUP
from shared.revocations import project as project_revocation

from . import domain, projections
from .context import Bank
from .domain import Decide

log = get_logger("bank.handlers")
MONTH_END_GROUP = BATCH_GROUP
"""Accounts read by one query and credited by one ``bulk_write`` during a month end (each
account's write is still its own atomic, guarded update)."""


def decision_for(event: CloudEvent, now: datetime, nightly: bool = False) -> Decide | None:
    """What an event of identity or cards asks of the person's account (None: nothing).
    ``nightly``: a loss report is kept for the business day's end instead of applied."""
    data = event.data
    match data:
        case PersonRegistered():
            return domain.register_person(data.person_id, data.name, data.id_number_digest)
        case ContributionPaid():
            return domain.record_contribution(data.person_id, data.contribution_id, data.month, data.amount_fen)
        case CardIssued():
            return domain.issue_card(data.person_id, data.card_number, data.replaces, now)
        case CardLost() if nightly:
            return domain.note_loss(data.person_id, data.card_number, now)
        case CardLost():
            return domain.block_card(data.person_id, data.card_number, "lost", now)
        case CardCancelled():
            return domain.block_card(data.person_id, data.card_number, "cancelled", now)
        case ReplacementRequested():
            return domain.remember_receipt(data.person_id, data.card_number, data.receipt_number,
                                           data.business_date)
    return None


def nightly(bank: Bank) -> bool:
    return bank.runtime.settings.bank_loss_propagation == "nightly"


def _log_loss(event: CloudEvent, now: datetime, kept: bool = False) -> None:
    if isinstance(event.data, CardLost) and not kept:  # kept for the night: applied later
        # The ids given here, not bound: in a batch the consumer has no one event to bind.
        log.info("bank.loss_applied", event_id=event.id, correlation_id=event.correlationid,
                 event_type=event.name, latency_ms=round((now - event.time).total_seconds() * 1000, 3))


async def on_identity_or_cards(bank: Bank, event: CloudEvent) -> None:
    """Persons, contributions and the card lifecycle, applied to the person's account."""
    now = datetime.now(UTC)
    # The indexes first: a lookup never misses a card or receipt the account knows.
    await projections.index(bank.runtime.db, event)
    await project_revocation(bank.runtime.db, event)  # a lock or closure refuses the holder's old tokens
    decide = decision_for(event, now, nightly(bank))
    if decide is None:
        return
    outcome = await bank.accounts.execute(event.data.person_id, decide,  # type: ignore[attr-defined]
                                          correlation_id=event.correlationid, cause=event)
    if not outcome.duplicate:
        _log_loss(event, now, nightly(bank))


async def on_identity_or_cards_batch(bank: Bank, events: list[CloudEvent]) -> list[Exception | None]:
    """A consumer batch at once: the indexes by one bulk write, and every account the
    batch touches read once (meanwhile) and saved, after the indexes, by one guarded write
    (``execute_batch``)."""
    now = datetime.now(UTC)
    for event in events:  # rare events (a lock, a closure): one write each
        await project_revocation(bank.runtime.db, event)
    items, where = [], []
    for k, event in enumerate(events):
        decide = decision_for(event, now, nightly(bank))
        if decide is not None:
            items.append((event.data.person_id, decide, event))  # type: ignore[attr-defined]
            where.append(k)
    # The indexes are written while the accounts are read, and before those are written.
    indexed = asyncio.ensure_future(projections.index_many(bank.runtime.db, events))
    try:
        done = await bank.accounts.execute_batch(items, before_write=indexed)
    finally:
        if not indexed.done():
            indexed.cancel()
        elif not indexed.cancelled():
            indexed.exception()  # retrieved: if the accounts failed first, theirs is the error raised
    errors: list[Exception | None] = [None] * len(events)
    for k, applied in zip(where, done, strict=True):
        errors[k] = applied.error
        if applied.error is None and not applied.duplicate:
            _log_loss(events[k], now, nightly(bank))
    return errors


async def on_clock(bank: Bank, event: CloudEvent) -> None:
    """Follow the business date; at a month end, run the monthly transfer."""
    data = event.data
    if isinstance(data, BusinessDateAdvanced):
        await apply_pending_losses(bank, event)  # the day ended: its kept loss reports first
        await bank.clock.apply(event)
    elif isinstance(data, MonthEnded):
        await run_month_end(bank, event, data)


async def apply_pending_losses(bank: Bank, event: CloudEvent) -> int:
    """The nightly policy's batch: every account holding a loss report kept for the day's
    end has it applied now (CardBlocked each), in groups of one query and one write.
    Returns how many accounts it applied. Under the instant policy none holds one."""
    accounts, seen, after = bank.accounts, 0, ""
    decide = domain.apply_pending_losses(datetime.now(UTC))
    while docs := await (accounts.collection.find({"losses_pending": True, "_id": {"$gt": after}})
                         .sort("_id", 1).limit(MONTH_END_GROUP).to_list()):
        seen += await accounts.execute_many(docs, decide, correlation_id=event.correlationid, cause=event)
        after = docs[-1]["_id"]
    if seen:
        log.info("bank.losses_applied_nightly", accounts=seen)
    return seen


async def run_month_end(bank: Bank, event: CloudEvent, data: MonthEnded) -> int:
    """Credit every account with a contribution due for the month (or earlier).

    The accounts due are read a page at a time in ``_id`` order (``MONTH_END_GROUP`` whole
    documents by one query, the next page read while this one is written), each page
    credited by one ``bulk_write`` (each account's write still its own atomic update,
    guarded by the ``rev`` it was read at). Memory holds one or two pages, however many
    accounts there are. Each account records the MonthEnded it applied, so a replay
    credits nothing twice. Returns how many accounts were looked at."""
    accounts = bank.accounts
    decide = domain.credit_month_end(data.month, data.closing_date, event.time)
    due = {"credit_due_from": {"$lte": data.month}}

    async def page(after: str | None) -> list[dict[str, Any]]:
        query = {**due, "_id": {"$gt": after}} if after is not None else due
        # By the _id index: each page goes on from the last, whatever the other index holds.
        return await (accounts.collection.find(query).sort("_id", 1).hint([("_id", 1)])
                      .limit(MONTH_END_GROUP).batch_size(MONTH_END_GROUP).to_list())

    seen = 0
    docs = await page(None)
    while docs:
        seen += len(docs)
        following = asyncio.ensure_future(page(docs[-1]["_id"])) if len(docs) == MONTH_END_GROUP else None
        try:
            await accounts.execute_many(docs, decide, correlation_id=event.correlationid, cause=event)
        except BaseException:
            if following is not None:
                following.cancel()
            raise
        docs = await following if following is not None else []
    log.info("bank.month_end", month=data.month, accounts=seen)
    return seen
