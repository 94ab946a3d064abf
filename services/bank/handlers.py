"""The bank's handlers: consumed events -> domain decisions through the account store
(every call passes ``cause=event``, so a repeated or older event changes nothing), and the
commands its routes take (passwords, balances, POS swipes, stamps, merchants, statements)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, cast

from shared.app import EventHandler, Subscription
from shared.auth import Principal, ensure_owner_or_staff
from shared.clock import CLOCK_GROUPS
from shared.database import find_flagged, insert_new, one_batch
from shared.domain import NotFound
from shared.events import (
    BankStamped,
    BusinessDateAdvanced,
    CardCancelled,
    CardIssued,
    CardLost,
    CloudEvent,
    ContributionPaid,
    EventData,
    MonthEnded,
    OnlineAccountClosed,
    OnlineAccountLocked,
    PersonRegistered,
    ReplacementRequested,
)
from shared.events.bank import BalanceChannel, PasswordChannel, PosKind
from shared.ids import id_digest, new_id
from shared.logging import get_logger
from shared.outbox import BATCH_GROUP
from shared.projection import already_applied
from shared.revocations import project as project_revocation
from shared.security import VerifiedSecrets, hash_secret_async, verify_secret_async

from . import domain, projections
from .authorisation import PosAnswer, Swipe, answer, authorise, check_own_terminal, inquire, repeated, screen
from .deps import Bank, unknown_card
from .domain import Decide
from .model import Account, Merchant
from .schemas import (
    CounterStatement,
    MerchantCreate,
    PasswordChange,
    PasswordReset,
    PasswordSet,
    PosAuthorisationCreate,
    PosBalanceInquiryCreate,
    StampCreate,
)
from .statement import Statement, build_statement, default_start

log = get_logger("bank.handlers")
VERIFIED_PINS = VerifiedSecrets()
"""Right PINs already verified by argon2 in this process (see shared.security)."""
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


def _log_loss(event: CloudEvent, now: datetime, kept: bool = False) -> None:
    if isinstance(event.data, CardLost) and not kept:  # kept for the night: applied later
        # The ids given here, not bound: in a batch the consumer has no one event to bind.
        log.info("bank.loss_applied", event_id=event.id, correlation_id=event.correlationid,
                 event_type=event.name, latency_ms=round((now - event.time).total_seconds() * 1000, 3))


async def _apply(bank: Bank, event: CloudEvent, now: datetime) -> None:
    """The event's decision (``decision_for``) applied to the person's account."""
    decide = decision_for(event, now, bank.nightly)
    assert decide is not None, f"{event.name} asks nothing of an account"
    outcome = await bank.accounts.execute(event.data.person_id, decide,  # type: ignore[attr-defined]
                                          correlation_id=event.correlationid, cause=event)
    if not outcome.duplicate:
        _log_loss(event, now, bank.nightly)


# --- events of identity and cards: persons, contributions and the card lifecycle ------

async def _indexed_and_applied(bank: Bank, event: CloudEvent) -> None:
    """The number's index first (a lookup never misses a card or receipt the account
    knows), then the account."""
    now = datetime.now(UTC)
    await projections.index(bank.runtime.db, event)
    bank.remember_cards([event])
    await _apply(bank, event, now)


async def on_person_registered(bank: Bank, event: CloudEvent) -> None:
    """The name and ID digest a teller checks the ID card against."""
    await _apply(bank, event, datetime.now(UTC))


async def on_contribution_paid(bank: Bank, event: CloudEvent) -> None:
    """A contribution waits for the month end (held while the person has no account)."""
    await _apply(bank, event, datetime.now(UTC))


async def on_card_issued(bank: Bank, event: CloudEvent) -> None:
    """A first card opens the account; a later one takes it over."""
    await _indexed_and_applied(bank, event)


async def on_card_lost(bank: Bank, event: CloudEvent) -> None:
    """A loss report stops the card (or, under the nightly policy, is kept for the day's end)."""
    await _indexed_and_applied(bank, event)


async def on_card_cancelled(bank: Bank, event: CloudEvent) -> None:
    """A cancelled card stops working."""
    await _apply(bank, event, datetime.now(UTC))


async def on_replacement_requested(bank: Bank, event: CloudEvent) -> None:
    """A replacement receipt the agency issued, for a teller to stamp."""
    await _indexed_and_applied(bank, event)


async def on_online_account_locked(bank: Bank, event: CloudEvent) -> None:
    """A lock refuses the holder's old tokens."""
    await project_revocation(bank.runtime.db, event)


async def on_online_account_closed(bank: Bank, event: CloudEvent) -> None:
    """A closure refuses the holder's old tokens."""
    await project_revocation(bank.runtime.db, event)


async def apply_batch(bank: Bank, events: list[CloudEvent]) -> list[Exception | None]:
    """A consumer batch at once: the indexes by one bulk write, and every account the
    batch touches read once (meanwhile) and saved, after the indexes, by one guarded write
    (``execute_batch``). The events that ask nothing of an account (a lock, a closure: rare)
    go to their handlers in ``HANDLERS``, one write each; events of other types are passed over."""
    now = datetime.now(UTC)
    nightly = bank.nightly
    items, where = [], []
    for k, event in enumerate(events):
        decide = decision_for(event, now, nightly)
        if decide is not None:
            items.append((event.data.person_id, decide, event))  # type: ignore[attr-defined]
            where.append(k)
    batched = set(where)
    for k, event in enumerate(events):
        if k not in batched and (handler := HANDLERS.get(type(event.data))) is not None:
            await handler(bank, event)
    # The indexes are written while the accounts are read, and before those are written.
    indexed = asyncio.ensure_future(projections.index_many(bank.runtime.db, events))
    try:
        done = await bank.accounts.execute_batch(items, before_write=indexed)
    finally:
        if not indexed.done():
            indexed.cancel()
        elif not indexed.cancelled():
            indexed.exception()  # retrieved: if the accounts failed first, theirs is the error raised
    bank.remember_cards(events)  # indexed (the accounts' write waited for it)
    errors: list[Exception | None] = [None] * len(events)
    for k, applied in zip(where, done, strict=True):
        errors[k] = applied.error
        if applied.error is None and not applied.duplicate:
            _log_loss(events[k], now, nightly)
    return errors


# --- events of the clock: the business day and the month end --------------------------

async def on_business_date_advanced(bank: Bank, event: CloudEvent) -> None:
    """Follow the business date; the day that ended has its kept loss reports applied first."""
    await apply_pending_losses(bank, event)
    await bank.clock.apply(event)


async def on_month_ended(bank: Bank, event: CloudEvent) -> None:
    """At a month end, run the monthly transfer."""
    await run_month_end(bank, event, cast(MonthEnded, event.data))


async def apply_pending_losses(bank: Bank, event: CloudEvent) -> int:
    """The nightly policy's batch: every account holding a loss report kept for the day's
    end has it applied now (CardBlocked each), in groups of one query and one write.
    Returns how many accounts it applied. Under the instant policy none holds one."""
    accounts, seen, after = bank.accounts, 0, ""
    decide = domain.apply_pending_losses(datetime.now(UTC))
    while docs := await one_batch(find_flagged(accounts.collection, "losses_pending", also={"_id": {"$gt": after}})
                                  .sort("_id", 1), MONTH_END_GROUP):
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
    cut = domain.archive_cut(data.closing_date)
    due = {"credit_due_from": {"$lte": data.month}}

    async def page(after: str | None) -> list[dict[str, Any]]:
        query = {**due, "_id": {"$gt": after}} if after is not None else due
        # By the _id index: each page goes on from the last, whatever the other index holds.
        return await one_batch(accounts.collection.find(query).sort("_id", 1).hint([("_id", 1)]),
                               MONTH_END_GROUP)

    seen = 0
    docs = await page(None)
    while docs:
        seen += len(docs)
        following = asyncio.ensure_future(page(docs[-1]["_id"])) if len(docs) == MONTH_END_GROUP else None
        try:
            archived = await archive_postings(bank, docs, cut, event)
            decide = domain.credit_month_end(data.month, data.closing_date, event.time, archived)
            await accounts.execute_many(docs, decide, correlation_id=event.correlationid, cause=event)
        except BaseException:
            if following is not None:
                following.cancel()
            raise
        docs = await following if following is not None else []
    log.info("bank.month_end", month=data.month, accounts=seen)
    return seen


async def archive_postings(bank: Bank, docs: list[dict[str, Any]], cut: date, event: CloudEvent) -> set[str]:
    """Write to the ledger archive the postings of ``docs`` (accounts as read for the month
    end ``event``) dated before ``cut``, before the write that takes them out of the accounts:
    a posting is always in its account or in the archive (or both, for a moment: a
    statement counts it once). Idempotent: a posting archived already is left as it is.
    Returns the references archived."""
    day = cut.isoformat()
    rows = [{"_id": f"{doc['_id']}/{entry['reference']}", "person_id": doc["_id"], **entry}
            for doc in docs if not already_applied(doc, event)
            for entry in doc.get("ledger") or () if entry["business_date"] < day]
    if rows:
        await insert_new(bank.ledger_archive, rows)
    return {row["reference"] for row in rows}


# --- commands: card passwords and balances ---------------------------------------------

async def card_account(bank: Bank, principal: Principal, card_number: str) -> Account:
    """The card's account, for its holder or a teller (another person's card is not found)."""
    return (await held_account(bank, principal, card_number))[0]


async def held_account(bank: Bank, principal: Principal, card_number: str) -> tuple[Account, dict[str, Any]]:
    """``card_account`` and its document as read, for a command on it (``execute``'s ``loaded``)."""
    account, doc = await bank.card_account_doc(card_number)
    ensure_owner_or_staff(principal, account.person_id, "teller", conceal=unknown_card(card_number))
    return account, doc


async def set_password(bank: Bank, principal: Principal, card_number: str, body: PasswordSet,
                       correlation_id: str) -> Account | None:
    """Set a new card's first password: the holder logged in, or a teller on the holder's ID card."""
    account, doc = await held_account(bank, principal, card_number)
    channel = cast(PasswordChannel, domain.check_channel_open(principal.role, body.channel))
    domain.check_id_number_for_first_password(principal.role == "teller", body.id_number is not None)
    presented = id_digest(bank.settings.id_digest_key, body.id_number) if body.id_number is not None else None
    decide = domain.set_pin(card_number, await hash_secret_async(body.pin), channel, presented)
    outcome = await bank.accounts.execute(account.person_id, decide, correlation_id=correlation_id,
                                          loaded=doc, loaded_state=account)
    return outcome.state


async def change_password(bank: Bank, principal: Principal, card_number: str, body: PasswordChange,
                          correlation_id: str) -> Account | None:
    """Change the card password with the old one; a wrong old one counts towards the lock,
    like a wrong PIN at the POS. At the counter the holder's ID card is checked first."""
    account, doc = await held_account(bank, principal, card_number)
    channel = cast(PasswordChannel, domain.check_channel_open(principal.role, body.channel))
    domain.check_new_password_differs(body.old_pin, body.new_pin)
    domain.check_id_card_shown(principal.role == "teller", body.id_number is not None)
    if body.id_number is not None:
        domain.check_id_card(account, id_digest(bank.settings.id_digest_key, body.id_number))
    checked = account.pin_hash or ""
    if checked and not account.pin_locked and not await verify_secret_async(checked, body.old_pin):
        counted = domain.wrong_pin(card_number, checked, bank.settings.pin_max_failures)
        locked = await bank.accounts.execute(account.person_id, counted, correlation_id=correlation_id,
                                             loaded=doc, loaded_state=account)
        raise domain.wrong_old_password(bool(locked.result))
    decide = domain.change_pin(card_number, checked, await hash_secret_async(body.new_pin), channel)
    outcome = await bank.accounts.execute(account.person_id, decide, correlation_id=correlation_id,
                                          loaded=doc, loaded_state=account)
    return outcome.state


async def reset_password(bank: Bank, card_number: str, body: PasswordReset, correlation_id: str) -> Account | None:
    """Reset a forgotten or locked password at the counter, on the holder's ID card."""
    account, doc = await bank.card_account_doc(card_number)
    digest = id_digest(bank.settings.id_digest_key, body.id_number)
    decide = domain.reset_pin(card_number, digest, await hash_secret_async(body.new_pin))
    outcome = await bank.accounts.execute(account.person_id, decide, correlation_id=correlation_id,
                                          loaded=doc, loaded_state=account)
    return outcome.state


async def tell_balance(bank: Bank, principal: Principal, card_number: str, channel: BalanceChannel | None,
                       correlation_id: str) -> tuple[int, BalanceChannel]:
    """A card's balance for its holder or a teller, and the channel recorded."""
    account, doc = await held_account(bank, principal, card_number)
    used = domain.check_channel_open(principal.role, channel)
    decide = domain.inquire_balance(card_number, used)
    outcome = await bank.accounts.execute(account.person_id, decide, correlation_id=correlation_id,
                                          loaded=doc, loaded_state=account)
    return outcome.result, used


# --- commands: merchants and the POS -------------------------------------------------

async def register_merchant(bank: Bank, body: MerchantCreate, correlation_id: str) -> Merchant:
    """Register a hospital, pharmacy or shop and whether it is designated."""
    decide = domain.register_merchant(body.merchant_id, body.name, body.kind, body.designated)
    outcome = await bank.merchants.execute(body.merchant_id, decide, correlation_id=correlation_id)
    return outcome.result  # type: ignore[no-any-return]


def swipe_of(principal: Principal, card_number: str, merchant_id: str, amount_fen: int, kind: PosKind, *,
             transaction_id: str | None = None) -> Swipe:
    """The swipe a terminal sends; a terminal speaks only for its own merchant (403)."""
    check_own_terminal(principal.role, principal.sub, merchant_id)
    return Swipe(card_number=card_number, merchant_id=merchant_id, amount_fen=amount_fen, kind=kind,
                 authorisation_id=new_id("AU"), at=datetime.now(UTC), transaction_id=transaction_id)


async def authorise_purchase(bank: Bank, principal: Principal, body: PosAuthorisationCreate,
                             correlation_id: str) -> PosAnswer:
    """Authorise a card payment at a POS; a refusal is an answer with its response code."""
    swipe = swipe_of(principal, body.card_number, body.merchant_id, body.amount_fen, body.kind,
                     transaction_id=body.transaction_id)
    return await decide_swipe(bank, swipe, body.pin, authorise, correlation_id)


async def inquire_at_pos(bank: Bank, principal: Principal, body: PosBalanceInquiryCreate,
                         correlation_id: str) -> PosAnswer:
    """Tell a card's balance at a POS, on the card password (refusals as for a purchase)."""
    swipe = swipe_of(principal, body.card_number, body.merchant_id, 0, "balance_inquiry")
    return await decide_swipe(bank, swipe, body.pin, inquire, correlation_id)


async def decide_swipe(bank: Bank, sent: Swipe, pin: str, rule: Callable[..., Decide],
                       correlation_id: str) -> PosAnswer:
    """Check the PIN (when it is what decides) and apply ``rule`` (authorise or inquire) to the account.

    The reads that do not depend on one another go out together: the business date, the
    merchant and the account (the card's person and a registered merchant are remembered
    once read: neither ever changes). Then one guarded write saves the answer."""
    person_id = await bank.person_of_card(sent.card_number)
    if person_id is None:
        return answer(sent.dated(bank.clock.today()), "14")  # nothing is recorded: the date is not used
    business_date, merchant, doc = await asyncio.gather(
        bank.clock.current(), bank.merchant(sent.merchant_id), bank.accounts.get_doc(person_id))
    swipe = sent.dated(business_date)
    account = bank.accounts.state_of(doc)
    # argon2 runs off the event loop, and only when the PIN is what decides (not for a repeat).
    fresh = account is not None and repeated(account, swipe) is None
    checked = account.pin_hash if account and fresh and screen(account, swipe, merchant) is None else None
    pin_ok = checked is not None and await VERIFIED_PINS.verify(checked, pin)
    decide = rule(swipe, merchant, checked_hash=checked, pin_ok=pin_ok, max_failures=bank.settings.pin_max_failures)
    outcome = await bank.accounts.execute(person_id, decide, correlation_id=correlation_id, loaded=doc,
                                          loaded_state=account)
    return outcome.result  # type: ignore[no-any-return]


# --- commands: stamps and statements -------------------------------------------------

async def stamp_receipt(bank: Bank, body: StampCreate, correlation_id: str) -> BankStamped:
    """Stamp a replacement receipt with the branch seal and the processing time (reports the loss if needed)."""
    person_id = await bank.person_of_receipt(body.receipt_number)
    if person_id is None:
        raise NotFound(f"replacement receipt {body.receipt_number} is unknown to the bank")
    decide = domain.stamp_receipt(body.receipt_number, body.branch, body.seal, datetime.now(UTC),
                                  await bank.clock.current())
    outcome = await bank.accounts.execute(person_id, decide, correlation_id=correlation_id)
    return outcome.result  # type: ignore[no-any-return]


async def account_of(bank: Bank, principal: Principal, person_id: str) -> Account:
    """A personal medical account, for its holder, a teller or an operator."""
    ensure_owner_or_staff(principal, person_id, "teller", "operator")
    return await bank.open_account(person_id)


async def statement_of(bank: Bank, account: Account, start: date | None, end: date | None) -> Statement:
    """The account's statement for a period of business dates (by default the last 12
    months up to the business date), with the archived postings when the period reaches
    back to them."""
    end = end or bank.clock.today()
    start = start or default_start(end)
    archived = None
    if account.archived_before is not None and start < account.archived_before:
        archived = await bank.archived_postings(account.person_id)
    return build_statement(account, start, end, archived)


async def holder_statement(bank: Bank, principal: Principal, person_id: str, start: date | None,
                           end: date | None) -> Statement:
    """The holder's own statement, online."""
    ensure_owner_or_staff(principal, person_id)
    return await statement_of(bank, await bank.open_account(person_id), start, end)


async def counter_statement(bank: Bank, person_id: str, body: CounterStatement) -> Statement:
    """A statement printed at the counter on the holder's ID card (its number must be the cardholder's)."""
    account = await bank.open_account(person_id)
    domain.check_id_card(account, id_digest(bank.settings.id_digest_key, body.id_number))
    return await statement_of(bank, account, body.start, body.end)


HANDLERS: dict[type[EventData], EventHandler[Bank]] = {
    PersonRegistered: on_person_registered,
    ContributionPaid: on_contribution_paid,
    OnlineAccountLocked: on_online_account_locked,
    OnlineAccountClosed: on_online_account_closed,
    CardIssued: on_card_issued,
    CardLost: on_card_lost,
    CardCancelled: on_card_cancelled,
    ReplacementRequested: on_replacement_requested,
}
"""Persons, contributions and online-account locks (identity), the card lifecycle (cards)."""
CLOCK_HANDLERS: dict[type[EventData], EventHandler[Bank]] = {
    BusinessDateAdvanced: on_business_date_advanced,
    MonthEnded: on_month_ended,
}
CONSUMERS = [
    Subscription(HANDLERS, batch=apply_batch),
    # The month end runs in its own consumer group, so a long transfer never delays a loss report.
    # One MonthEnded credits every account in one handler call: at 100,000 accounts that is
    # longer than Kafka's default 5 minutes between polls, after which the group would evict
    # the consumer and replay the batch. Its limit is an hour (a dead process is still found
    # by the session timeout; only a handler stuck for an hour goes unnoticed that long).
    Subscription(CLOCK_HANDLERS, group=CLOCK_GROUPS["bank"], max_poll_interval_ms=3_600_000),
]
