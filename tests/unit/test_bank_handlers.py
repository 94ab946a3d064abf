"""The bank's handlers on an in-memory store: commands (a merchant registered, a first
password set, a wrong old password counted, a purchase debited, a receipt stamped) and
consumed events (a person, a contribution held, a card cancelled), each with its state,
its events and its refusals."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.bank import domain, handlers
from services.bank.authorisation import NotThisTerminal
from services.bank.deps import Bank
from services.bank.model import Account, Merchant
from services.bank.schemas import MerchantCreate, PasswordChange, PasswordSet, PosAuthorisationCreate, StampCreate
from shared.auth import Principal
from shared.clock import BusinessClock
from shared.events import (
    BankStamped,
    CardBlocked,
    CardCancelled,
    CardPasswordSet,
    ContributionHeld,
    ContributionPaid,
    MerchantRegistered,
    PersonRegistered,
    PurchaseAuthorised,
    new_event,
)
from shared.events.base import EventData
from shared.outbox import AggregateStore
from shared.security import hash_secret
from shared.settings import Settings
from tests.unit.memory_collection import MemoryCollection

CARD = "6216610000000000017"
AT = datetime(2026, 1, 5, 9, tzinfo=UTC)
HOLDER = Principal(sub="P1", role="cardholder", person_id="P1")
TELLER = Principal(sub="T1", role="teller")
TERMINAL = Principal(sub="M-PH", role="merchant")


def bank() -> Bank:
    db = {name: MemoryCollection(name) for name in ("accounts", "merchants", "card_index", "receipt_index",
                                                  "ledger_archive", "clock")}
    return Bank(runtime=None,  # type: ignore[arg-type]
                accounts=AggregateStore(db["accounts"], service="bank", state_type=Account),  # type: ignore[arg-type]
                merchants=AggregateStore(db["merchants"], service="bank", state_type=Merchant),  # type: ignore[arg-type]
                card_index=db["card_index"], receipt_index=db["receipt_index"],  # type: ignore[arg-type]
                ledger_archive=db["ledger_archive"],  # type: ignore[arg-type]
                clock=BusinessClock(db),  # type: ignore[arg-type]
                settings=Settings(pin_max_failures=2))


def memory(store: AggregateStore[Any]) -> dict[str, dict[str, Any]]:
    return store.collection.docs  # type: ignore[attr-defined,no-any-return]


def published(store: AggregateStore[Any], aggregate_id: str) -> list[str]:
    return [e["type"] for e in memory(store)[aggregate_id]["outbox"]]


def event_of(data: EventData, sequence: int = 1) -> Any:
    return new_event(data, source="/medcard/test", partitionkey="P1", sequence=sequence, correlationid="c1")


async def with_card(b: Bank, pin: str | None = None, balance_fen: int = 0) -> None:
    """Person P1 with card CARD open at the bank (as the consumed events leave it)."""
    await b.accounts.execute("P1", domain.register_person("P1", "Li Wei", "d"), correlation_id="c0")
    await b.accounts.execute("P1", domain.issue_card("P1", CARD, None, AT), correlation_id="c0")
    b.card_index.docs[CARD] = {"_id": CARD, "person_id": "P1"}  # type: ignore[attr-defined]
    doc = memory(b.accounts)["P1"]
    doc["balance_fen"] = balance_fen
    if pin is not None:
        doc["pin_hash"] = hash_secret(pin)


async def test_a_merchant_is_registered_once_and_a_shop_is_never_designated() -> None:
    b = bank()
    body = MerchantCreate(merchant_id="M-PH", name="Tongrentang", kind="pharmacy", designated=True)
    merchant = await handlers.register_merchant(b, body, "c1")
    assert merchant.designated and memory(b.merchants)["M-PH"]["name"] == "Tongrentang"
    assert published(b.merchants, "M-PH") == [MerchantRegistered.event_type()]
    with pytest.raises(domain.MerchantExists):
        await handlers.register_merchant(b, body, "c2")
    shop = MerchantCreate(merchant_id="M-SH", name="Corner shop", kind="shop", designated=True)
    with pytest.raises(domain.ShopNotDesignated):
        await handlers.register_merchant(b, shop, "c3")
    assert "M-SH" not in memory(b.merchants)


async def test_the_holder_sets_the_first_password_once_and_a_teller_only_on_the_id_card() -> None:
    b = bank()
    await with_card(b)
    with pytest.raises(domain.IdNumberRequired):
        await handlers.set_password(b, TELLER, CARD, PasswordSet(pin="246810"), "c1")
    account = await handlers.set_password(b, HOLDER, CARD, PasswordSet(pin="246810"), "c2")
    assert account is not None and account.pin_hash is not None
    assert published(b.accounts, "P1")[-1] == CardPasswordSet.event_type()
    with pytest.raises(domain.PasswordAlreadySet):
        await handlers.set_password(b, HOLDER, CARD, PasswordSet(pin="135790"), "c3")
    someone_else = Principal(sub="P2", role="cardholder", person_id="P2")
    with pytest.raises(domain.NotFound, match="is not linked to a personal account"):
        await handlers.set_password(b, someone_else, CARD, PasswordSet(pin="246810"), "c4")


async def test_a_wrong_old_password_counts_and_the_last_try_locks_it() -> None:
    b = bank()
    await with_card(b, pin="246810")
    wrong = PasswordChange(old_pin="111111", new_pin="135790")
    with pytest.raises(domain.WrongPassword):
        await handlers.change_password(b, HOLDER, CARD, wrong, "c1")
    assert memory(b.accounts)["P1"]["pin_failures"] == 1
    with pytest.raises(domain.PasswordLocked, match="too many wrong tries lock"):
        await handlers.change_password(b, HOLDER, CARD, wrong, "c2")
    assert memory(b.accounts)["P1"]["pin_locked"] is True
    with pytest.raises(domain.PasswordLocked, match="a teller must reset it"):
        await handlers.change_password(b, HOLDER, CARD, PasswordChange(old_pin="246810", new_pin="135790"), "c3")


async def test_a_purchase_at_a_designated_pharmacy_is_debited_and_its_resend_answered_alike() -> None:
    b = bank()
    await with_card(b, pin="246810", balance_fen=10_000)
    await handlers.register_merchant(
        b, MerchantCreate(merchant_id="M-PH", name="Tongrentang", kind="pharmacy", designated=True), "c0")
    body = PosAuthorisationCreate(card_number=CARD, pin="246810", merchant_id="M-PH", amount_fen=3_000,
                                  transaction_id="T1")
    said = await handlers.authorise_purchase(b, TERMINAL, body, "c1")
    assert said.approved and said.response_code == "00" and said.balance_after_fen == 7_000
    assert memory(b.accounts)["P1"]["balance_fen"] == 7_000
    assert published(b.accounts, "P1")[-1] == PurchaseAuthorised.event_type()
    again = await handlers.authorise_purchase(b, TERMINAL, body, "c2")
    assert again.authorisation_id == said.authorisation_id and memory(b.accounts)["P1"]["balance_fen"] == 7_000
    with pytest.raises(NotThisTerminal):
        await handlers.authorise_purchase(b, Principal(sub="M-SH", role="merchant"), body, "c3")
    unknown = await handlers.authorise_purchase(b, TERMINAL, body.model_copy(update={"card_number": "6216619"}),
                                                "c4")
    assert unknown.response_code == "14" and not unknown.approved


async def test_a_receipt_is_stamped_once_and_reports_the_loss() -> None:
    b = bank()
    await with_card(b)
    await b.accounts.execute("P1", domain.remember_receipt("P1", CARD, "R1", date(2026, 1, 2)), correlation_id="c0")
    b.receipt_index.docs["R1"] = {"_id": "R1", "person_id": "P1"}  # type: ignore[attr-defined]
    body = StampCreate(receipt_number="R1", branch="BOC Xidan", seal="BOC-XD-0420")
    stamped = await handlers.stamp_receipt(b, body, "c1")
    assert stamped.loss_reported and published(b.accounts, "P1")[-2:] == [CardBlocked.event_type(),
                                                                          BankStamped.event_type()]
    with pytest.raises(domain.AlreadyStamped):
        await handlers.stamp_receipt(b, body, "c2")
    with pytest.raises(domain.NotFound, match="R2 is unknown"):
        await handlers.stamp_receipt(b, body.model_copy(update={"receipt_number": "R2"}), "c3")


async def test_a_registered_person_is_remembered_for_the_id_check_and_a_repeat_changes_nothing() -> None:
    b = bank()
    event = event_of(PersonRegistered(person_id="P1", unit_id="U1", name="Li Wei", id_number_digest="d1",
                                      id_number_masked="1101**********0017", mobile="13800000000"))
    await handlers.on_person_registered(b, event)
    doc = memory(b.accounts)["P1"]
    assert doc["name"] == "Li Wei" and doc["id_number_digest"] == "d1" and doc["account_id"] is None
    rev = doc["rev"]
    await handlers.on_person_registered(b, event)
    assert memory(b.accounts)["P1"]["rev"] == rev


async def test_a_contribution_without_an_account_is_held() -> None:
    b = bank()
    await handlers.on_contribution_paid(b, event_of(ContributionPaid(
        person_id="P1", unit_id="U1", contribution_id="C1", month="2026-01", amount_fen=12_000)))
    doc = memory(b.accounts)["P1"]
    assert doc["held"] is True and doc["contributions"][0]["contribution_id"] == "C1"
    assert published(b.accounts, "P1") == [ContributionHeld.event_type()]


async def test_a_cancelled_card_stops_working() -> None:
    b = bank()
    await with_card(b)
    await handlers.on_card_cancelled(b, event_of(CardCancelled(person_id="P1", card_number=CARD, reason="closed")))
    account = await b.accounts.get("P1")
    assert account is not None and account.card(CARD).status == "cancelled"
    assert published(b.accounts, "P1")[-1] == CardBlocked.event_type()


def test_the_tables_read_identity_and_cards_and_the_clock_in_its_own_group() -> None:
    events, clock = handlers.CONSUMERS
    assert events.services() == ["identity", "cards"] and events.batch is handlers.apply_batch
    assert clock.services() == ["clock"] and clock.group == "bank.clock"
    assert clock.max_poll_interval_ms == 3_600_000
