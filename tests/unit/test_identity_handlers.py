"""Identity's command handlers on an in-memory context: aggregate stores over
``MemoryCollection`` (the way tests/unit/test_outbox_writes.py builds one), what they
decide, the events they leave in the outbox, and their refusals, which write nothing.

Identity consumes no topic, so it has no event handlers to test."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Coroutine
from datetime import UTC, date, datetime
from typing import Any, TypeVar, cast

import pytest
from pydantic import BaseModel
from pymongo.errors import DuplicateKeyError

from services.identity import handlers
from services.identity.clock import ClockState
from services.identity.config import IdentitySettings
from services.identity.deps import Identity
from services.identity.domain import (
    IdCardMismatch,
    IdNumberTaken,
    InsuredUnit,
    MerchantIdMismatch,
    MonthAlreadyPaid,
    NoOnlineAccount,
    Person,
    StaffUser,
    UnknownUnit,
    UsernameTaken,
    code_digest,
    issue_account_code,
    open_account,
    staff_key,
)
from services.identity.followers import ClockFollowers
from services.identity.schemas import AccountRecovery, ContributionCreate, PersonCreate, StaffCreate, UnitCreate
from shared.events import ContributionPaid, OnlineAccountClosed, PersonRegistered, StaffUserCreated
from shared.clock import real_today
from shared.guard import RateLimits
from shared.ids import id_digest, make_id_number
from shared.outbox import AggregateStore
from shared.revocations import WITH_STAFF, TokenRevocations
from shared.security import ONE_TIME_CODE_PURPOSE, SecretBox
from tests.unit.memory_collection import Doc, MemoryCollection, matches

T = TypeVar("T")
S = TypeVar("S", bound=BaseModel)
SETTINGS = IdentitySettings(environment="test", namespace="handlers", identity_bootstrap_operator_password=None)
ID_NUMBER = make_id_number("110105", date(1990, 3, 7), 123)
OTHER_ID_NUMBER = make_id_number("110105", date(1991, 4, 8), 456)


class UpdateResult:
    def __init__(self, matched: int) -> None:
        self.matched_count = matched


class WritableCollection(MemoryCollection):
    """``MemoryCollection`` with the single-document writes the aggregate store's ``execute``
    and identity's indexes use: ``insert_one`` (a taken ``_id`` is a DuplicateKeyError),
    ``update_one`` (``$set``, ``$push`` with ``$each``, ``$max``; ``upsert``) and ``delete_one``."""

    async def insert_one(self, doc: Doc) -> None:
        await asyncio.sleep(0)
        if doc["_id"] in self.docs:
            raise DuplicateKeyError(f"duplicate _id {doc['_id']}")
        self.docs[doc["_id"]] = copy.deepcopy(doc)

    async def update_one(self, query: Doc, update: Doc, upsert: bool = False) -> UpdateResult:
        await asyncio.sleep(0)
        doc = next((d for d in self.docs.values() if matches(d, query)), None)
        if doc is None:
            if not upsert:
                return UpdateResult(0)
            doc = self.docs[query["_id"]] = {"_id": query["_id"]}
        for field, value in update.get("$set", {}).items():
            doc[field] = copy.deepcopy(value)
        for field, pushed in update.get("$push", {}).items():
            doc.setdefault(field, []).extend(copy.deepcopy(pushed["$each"]))
        for field, value in update.get("$max", {}).items():
            doc[field] = max(doc.get(field, value), value)
        return UpdateResult(1)

    async def delete_one(self, query: Doc) -> None:
        await asyncio.sleep(0)
        found = next((key for key, d in self.docs.items() if matches(d, query)), None)
        if found is not None:
            del self.docs[found]


def _store(name: str, state_type: type[S]) -> AggregateStore[S]:
    return AggregateStore(WritableCollection(name), service="identity", state_type=state_type)  # type: ignore[arg-type]


def identity() -> Identity:
    """The context with every collection in memory (the Kafka clients of the followers are
    made only at an advance's first wait, which these tests do not reach)."""
    return Identity(
        settings=SETTINGS, units=_store("units", InsuredUnit), persons=_store("persons", Person),
        staff=_store("staff", StaffUser), clock=_store("business_clock", ClockState),
        account_numbers=WritableCollection("account_numbers"),  # type: ignore[arg-type]
        limits=RateLimits(WritableCollection("rate_limits"), per_client=SETTINGS.rate_limit_per_client,  # type: ignore[arg-type]
                          key=SETTINGS.id_digest_key),
        code_box=SecretBox(SETTINGS.otp_key, ONE_TIME_CODE_PURPOSE), followers=ClockFollowers(SETTINGS),
        revocations=TokenRevocations(WritableCollection("token_revocations"), roles=WITH_STAFF),  # type: ignore[arg-type]
    )


def run(step: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(step)


def stored(collection: object) -> dict[str, Doc]:
    """The documents of one of the context's in-memory collections."""
    return cast(WritableCollection, collection).docs


def docs(store: AggregateStore[Any]) -> dict[str, Doc]:
    return stored(store.collection)


def outbox_types(store: AggregateStore[Any], aggregate_id: str) -> list[str]:
    return [e["type"] for e in docs(store)[aggregate_id]["outbox"]]


def person_body(id_number: str = ID_NUMBER, unit_id: str | None = None) -> PersonCreate:
    return PersonCreate(name=" Wang Fang ", id_number=id_number, mobile="13800138000",
                        household_number="110105001234", unit_id=unit_id)


def test_registering_a_person_publishes_them_and_refuses_a_second_with_the_same_id_number() -> None:
    ctx = identity()

    async def scenario() -> None:
        unit = await handlers.create_unit(ctx, UnitCreate(name=" Tongren Hospital "), "c1")
        assert unit.name == "Tongren Hospital" and await ctx.units.get(unit.unit_id) == unit
        person = await handlers.create_person(ctx, person_body(unit_id=unit.unit_id), "c2")
        assert person.name == "Wang Fang" and person.unit_id == unit.unit_id
        assert person.id_number_digest == id_digest(SETTINGS.id_digest_key, ID_NUMBER)
        assert ID_NUMBER not in str(docs(ctx.persons)[person.person_id])  # only its digest and masked form
        assert outbox_types(ctx.persons, person.person_id) == [PersonRegistered.event_type()]
        with pytest.raises(IdNumberTaken):
            await handlers.create_person(ctx, person_body(), "c3")
        with pytest.raises(UnknownUnit, match="insured unit U404 is not registered"):
            await handlers.create_person(ctx, person_body(OTHER_ID_NUMBER, unit_id="U404"), "c4")
        assert list(docs(ctx.persons)) == [person.person_id]

    run(scenario())


def test_a_units_contributions_are_all_checked_before_any_is_paid() -> None:
    ctx = identity()

    async def scenario() -> None:
        unit = await handlers.create_unit(ctx, UnitCreate(name="Tongren Hospital"), "c1")
        first = await handlers.create_person(ctx, person_body(unit_id=unit.unit_id), "c2")
        second = await handlers.create_person(ctx, person_body(OTHER_ID_NUMBER, unit_id=unit.unit_id), "c3")
        body = ContributionCreate(unit_id=unit.unit_id, month="2026-01",
                                  items=[{"person_id": first.person_id, "amount_fen": 12000}])  # type: ignore[list-item]
        paid = await handlers.pay_contributions(ctx, body, "c4")
        assert paid.count == 1 and paid.data[0].person_id == first.person_id
        assert outbox_types(ctx.persons, first.person_id)[-1] == ContributionPaid.event_type()
        both = ContributionCreate(unit_id=unit.unit_id, month="2026-01",
                                  items=[{"person_id": second.person_id, "amount_fen": 9000},  # type: ignore[list-item]
                                         {"person_id": first.person_id, "amount_fen": 12000}])  # type: ignore[list-item]
        with pytest.raises(MonthAlreadyPaid, match=f"2026-01 is already paid for person {first.person_id}"):
            await handlers.pay_contributions(ctx, both, "c5")
        untouched = await ctx.persons.get(second.person_id)
        assert untouched is not None and untouched.contributions == {}
        assert outbox_types(ctx.persons, second.person_id) == [PersonRegistered.event_type()]

    run(scenario())


def test_the_counter_closes_an_account_on_the_id_card_revokes_its_tokens_and_frees_its_number() -> None:
    ctx = identity()

    async def scenario() -> None:
        person = await handlers.create_person(ctx, person_body(), "c1")
        pid, now = person.person_id, datetime.now(UTC)
        digest = code_digest(SETTINGS.otp_key, pid, "402913")
        await ctx.persons.execute(pid, issue_account_code(name="Wang Fang", digest=digest, sealed="s", now=now,
                                                          ttl_seconds=300), correlation_id="c2")
        await ctx.claim_account_number("wangfang01", pid)
        await ctx.persons.execute(pid, open_account(name="Wang Fang", account_number="wangfang01",
                                                    password_hash="h", digest=digest, now=now), correlation_id="c3")
        with pytest.raises(IdCardMismatch):
            await handlers.recover_account(ctx, pid, AccountRecovery(id_number=OTHER_ID_NUMBER), "c4")
        closed = await handlers.recover_account(ctx, pid, AccountRecovery(id_number=ID_NUMBER), "c5")
        assert closed.closed_account_number == "wangfang01"
        after = await ctx.persons.get(pid)
        assert after is not None and after.account is None
        assert outbox_types(ctx.persons, pid)[-1] == OnlineAccountClosed.event_type()
        assert pid in stored(ctx.revocations.collection)
        assert "wangfang01" not in stored(ctx.account_numbers)
        with pytest.raises(NoOnlineAccount):
            await handlers.recover_account(ctx, pid, AccountRecovery(id_number=ID_NUMBER), "c6")

    run(scenario())


def test_a_staff_user_is_created_once_and_a_merchant_terminal_needs_its_merchant() -> None:
    ctx = identity()

    async def scenario() -> None:
        clerk = await handlers.create_staff_user(
            ctx, StaffCreate(username="clerk-li", password="counter-secret-1", role="clerk"), "c1")
        assert clerk.role == "clerk" and clerk.merchant_id is None
        stored = await ctx.staff.get(staff_key("clerk-li"))
        assert stored is not None and stored.user_id == clerk.user_id and stored.password_hash != "counter-secret-1"
        assert outbox_types(ctx.staff, staff_key("clerk-li")) == [StaffUserCreated.event_type()]
        with pytest.raises(UsernameTaken):
            await handlers.create_staff_user(
                ctx, StaffCreate(username="clerk-li", password="another-secret", role="teller"), "c2")
        with pytest.raises(MerchantIdMismatch):
            await handlers.create_staff_user(
                ctx, StaffCreate(username="pos-01", password="terminal-secret-1", role="merchant"), "c3")
        assert list(docs(ctx.staff)) == [staff_key("clerk-li")]

    run(scenario())


def test_the_clock_is_the_real_date_until_first_advanced() -> None:
    ctx = identity()
    now = run(handlers.clock_now(ctx))
    assert now.simulated is False and now.date == real_today()


def test_identity_consumes_no_topic() -> None:
    assert handlers.CONSUMERS == []
