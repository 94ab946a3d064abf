"""The cards service's handlers on an in-memory store: commands (issue a card, report a loss
online, apply for a replacement) and consumed events (a registration, an activation, the
bank's block and stamp, an online account's lock, a batch), each by what it leaves behind:
the cardholder, the events in its outbox, the numbers drawn, the refusals."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.cards import handlers
from services.cards.deps import Cards
from services.cards.domain import ActiveCardNotBroken, AlreadyHasCard
from services.cards.handlers import HANDLERS, apply_batch
from services.cards.model import Cardholder
from services.cards.schemas import CardCreate, LossReportOnline, ReplacementCreate
from shared.auth import Principal
from shared.calendar import BusinessCalendar
from shared.clock import BusinessClock
from shared.domain import Forbidden, NotFound
from shared.events import (
    AccountOpened,
    BankStamped,
    CardBlocked,
    CardPasswordSet,
    CloudEvent,
    EventData,
    OnlineAccountLocked,
    PersonRegistered,
    new_event,
)
from shared.guard import RateLimits
from shared.outbox import AggregateStore
from shared.revocations import COLLECTION as REVOCATIONS
from shared.settings import Settings
from tests.unit.memory_collection import MemoryCollection

PID = "P1"
ID_NUMBER = "11010519491231002X"
TODAY = date(2026, 1, 5)  # a Monday
ME = Principal(sub=PID, role="cardholder", person_id=PID)


def context(loss_block_wait_seconds: float = 0.0) -> Cards:
    """The cards context on in-memory collections, its business date ``TODAY``."""
    settings = Settings(environment="test", namespace="cards-handlers",  # type: ignore[call-arg]
                        loss_block_wait_seconds=loss_block_wait_seconds)
    holders = MemoryCollection("cardholders")
    clock = MemoryCollection("clock")
    clock.docs["clock"] = {"_id": "clock", "date": TODAY.isoformat()}
    db: dict[str, Any] = {"clock": clock, REVOCATIONS: MemoryCollection(REVOCATIONS)}
    holders.database = db  # type: ignore[attr-defined]  # where the token revocations are projected
    return Cards(
        settings=settings,
        holders=AggregateStore(holders, service="cards", state_type=Cardholder),  # type: ignore[arg-type]
        card_index=MemoryCollection("card_index"),  # type: ignore[arg-type]
        voucher_index=MemoryCollection("voucher_index"),  # type: ignore[arg-type]
        receipt_index=MemoryCollection("receipt_index"),  # type: ignore[arg-type]
        clock=BusinessClock(db),  # type: ignore[arg-type]
        calendar=BusinessCalendar(),
        limits=RateLimits(MemoryCollection("rate_limits"), per_client="60/minute",  # type: ignore[arg-type]
                          key=settings.id_digest_key),
    )


def collection(ctx: Cards, name: str) -> MemoryCollection:
    found: Any = getattr(ctx, name) if name != "cardholders" else ctx.holders.collection
    assert isinstance(found, MemoryCollection)
    return found


def event(data: EventData, sequence: int = 1, service: str = "bank") -> CloudEvent:
    return new_event(data, source=f"/medcard/{service}", subject=PID, partitionkey=PID, sequence=sequence,
                     correlationid="c1")


def registered(person_id: str = PID, id_number_digest: str = "") -> CloudEvent:
    return new_event(PersonRegistered(person_id=person_id, unit_id="U1", name="Wang Fang",
                                      id_number_masked="110**********002X", id_number_digest=id_number_digest,
                                      mobile="13800138000"),
                     source="/medcard/identity", subject=person_id, partitionkey=person_id, sequence=1,
                     correlationid="c1")


async def holder_with_card(ctx: Cards) -> str:
    """Register ``PID`` (with the digest of ``ID_NUMBER``) and issue them a card; its number."""
    await handlers.on_person_registered(ctx, registered(id_number_digest=ctx.presented_digest(ID_NUMBER)))
    card = await handlers.issue_card(ctx, CardCreate(person_id=PID), "c2")
    return card.card_number


async def broken_card_applied_for(ctx: Cards) -> tuple[str, BankStamped]:
    """An active card brought in broken and applied for: its number, and the bank's stamp of the receipt."""
    number = await holder_with_card(ctx)
    await handlers.on_card_password_set(ctx, event(CardPasswordSet(person_id=PID, card_number=number,
                                                                   channel="counter")))
    _, card = await handlers.request_replacement(
        ctx, ReplacementCreate(card_number=number, id_number=ID_NUMBER, broken_card=True), "c8")
    assert card.replacement is not None
    stamp = BankStamped(person_id=PID, card_number=number, receipt_number=card.replacement.receipt_number,
                        branch="B1", seal="S1", processed_at=datetime(2026, 1, 5, 3, tzinfo=UTC),
                        business_date=TODAY, loss_reported=True)
    return number, stamp


async def holder(ctx: Cards, person_id: str = PID) -> Cardholder:
    found = await ctx.holders.get(person_id)
    assert found is not None
    return found


def outbox(ctx: Cards, person_id: str = PID) -> list[str]:
    return [e["type"].split(".")[-2] for e in collection(ctx, "cardholders").docs[person_id]["outbox"]]


# Commands

def test_issuing_a_card_draws_its_number_and_a_second_one_is_refused_before_drawing() -> None:
    async def run() -> None:
        ctx = context()
        number = await holder_with_card(ctx)
        card = (await holder(ctx)).card(number)
        assert (card.state, card.issued_on) == ("pending_activation", TODAY)
        assert outbox(ctx) == ["CardIssued"]
        assert collection(ctx, "card_index").docs == {number: {"_id": number, "person_id": PID}}
        with pytest.raises(AlreadyHasCard, match="at most one active card per person"):
            await handlers.issue_card(ctx, CardCreate(person_id=PID), "c3")
        assert list(collection(ctx, "card_index").docs) == [number], "a refused command draws no number"
        assert outbox(ctx) == ["CardIssued"]

    asyncio.run(run())


def test_a_loss_reported_online_answers_once_the_bank_has_blocked_the_card() -> None:
    async def run() -> None:
        ctx = context(loss_block_wait_seconds=5)
        number = await holder_with_card(ctx)
        body = LossReportOnline(name="Wang Fang", id_number=ID_NUMBER, mobile="13800138000")
        report = asyncio.create_task(handlers.report_loss_online(ctx, ME, body, "c4"))
        while not collection(ctx, "voucher_index").docs:
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)  # the report is waiting for the bank's block
        blocked_at = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
        await handlers.on_card_blocked(ctx, event(CardBlocked(person_id=PID, card_number=number, reason="lost",
                                                              blocked_at=blocked_at)))
        reported = await asyncio.wait_for(report, 1)
        assert reported.new and reported.card.bank_blocked_at == blocked_at and reported.card.state == "lost"
        assert reported.card.loss is not None
        voucher = reported.card.loss.voucher
        assert list(collection(ctx, "voucher_index").docs) == [voucher]
        again = await handlers.report_loss_online(ctx, ME, body, "c5")
        assert not again.new and again.card.loss is not None and again.card.loss.voucher == voucher
        assert outbox(ctx) == ["CardIssued", "CardLost"]
        wrong = LossReportOnline(name="Wang Fang", id_number=ID_NUMBER, mobile="13900000000")
        with pytest.raises(Forbidden):
            await handlers.report_loss_online(ctx, ME, wrong, "c6")

    asyncio.run(run())


def test_an_active_card_is_replaced_only_when_brought_in_broken() -> None:
    async def run() -> None:
        ctx = context()
        number = await holder_with_card(ctx)
        await handlers.on_card_password_set(ctx, event(CardPasswordSet(person_id=PID, card_number=number,
                                                                       channel="counter")))
        with pytest.raises(ActiveCardNotBroken, match="report it lost first"):
            await handlers.request_replacement(ctx, ReplacementCreate(card_number=number, id_number=ID_NUMBER), "c7")
        assert collection(ctx, "receipt_index").docs == {}
        person_id, card = await handlers.request_replacement(
            ctx, ReplacementCreate(card_number=number, id_number=ID_NUMBER, broken_card=True), "c8")
        assert person_id == PID and card.state == "replacement_requested" and card.replacement is not None
        assert list(collection(ctx, "receipt_index").docs) == [card.replacement.receipt_number]
        assert outbox(ctx) == ["CardIssued", "CardActivated", "ReplacementRequested"]

    asyncio.run(run())


# Events

def test_a_registration_makes_a_cardholder_once() -> None:
    async def run() -> None:
        ctx = context()
        await handlers.on_person_registered(ctx, registered())
        await handlers.on_person_registered(ctx, registered())  # a repeat changes nothing
        found = await holder(ctx)
        assert (found.name, found.mobile, found.cards) == ("Wang Fang", "13800138000", [])
        assert collection(ctx, "cardholders").docs[PID]["version"] == 0

    asyncio.run(run())


def test_the_password_set_activates_the_card_once() -> None:
    async def run() -> None:
        ctx = context()
        number = await holder_with_card(ctx)
        password = event(CardPasswordSet(person_id=PID, card_number=number, channel="counter"), sequence=2)
        await handlers.on_card_password_set(ctx, password)
        await handlers.on_card_password_set(ctx, password)
        assert (await holder(ctx)).card(number).state == "active"
        assert outbox(ctx) == ["CardIssued", "CardActivated"]

    asyncio.run(run())


def test_the_banks_stamp_starts_production_and_reports_a_broken_card_lost() -> None:
    async def run() -> None:
        ctx = context()
        number, stamp = await broken_card_applied_for(ctx)
        await handlers.on_bank_stamped(ctx, event(stamp, sequence=2))
        made = (await holder(ctx)).card(number)
        assert made.state == "in_production" and made.loss is not None and made.loss.channel == "bank"
        assert made.replacement is not None and made.replacement.ready_on == date(2026, 1, 26)
        assert list(collection(ctx, "voucher_index").docs) == [made.loss.voucher]
        assert outbox(ctx)[-2:] == ["CardLost", "ReplacementProductionStarted"]

    asyncio.run(run())


def test_an_online_accounts_lock_refuses_the_holders_earlier_tokens() -> None:
    async def run() -> None:
        ctx = context()
        locked = new_event(OnlineAccountLocked(person_id=PID, account_number="A1", failures=5,
                                               locked_until=datetime(2026, 1, 5, 3, tzinfo=UTC)),
                           source="/medcard/identity", subject=PID, partitionkey=PID, sequence=2, correlationid="c1")
        await HANDLERS[OnlineAccountLocked](ctx, locked)
        revoked = collection(ctx, "cardholders").database[REVOCATIONS].docs  # type: ignore[attr-defined]
        assert list(revoked) == [PID] and revoked[PID]["not_before"] >= locked.time

    asyncio.run(run())


def test_a_batch_saves_its_cardholders_events_at_once_and_hands_the_others_to_their_handlers() -> None:
    async def run() -> None:
        ctx = context()
        number, stamp = await broken_card_applied_for(ctx)
        batch = [
            registered("P2"),
            event(stamp, sequence=2),  # needs a voucher number: through its handler
            event(AccountOpened(person_id=PID, account_id="PMA-P1", card_number=number), sequence=3),  # not ours
            event(CardPasswordSet(person_id=PID, card_number="6216610000000000999", channel="counter"), sequence=4),
        ]
        errors = await apply_batch(ctx, batch)
        assert errors[:3] == [None, None, None]
        assert isinstance(errors[3], NotFound) and "is not a card of person P1" in str(errors[3])
        assert (await holder(ctx, "P2")).cards == []
        assert (await holder(ctx)).card(number).state == "in_production"
        assert outbox(ctx)[-2:] == ["CardLost", "ReplacementProductionStarted"]
        assert AccountOpened not in HANDLERS

    asyncio.run(run())
