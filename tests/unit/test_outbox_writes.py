"""The aggregate store's batch writes, built without the envelope models: the outbox keeps
exactly what the envelopes' JSON dump gave, event ids are random UUIDs, a write sets only
the fields that changed, and an account's cheap copy is as independent as a deep one."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime
from typing import Any

from services.bank import domain
from services.bank.model import Account, CardState, Contribution, Receipt
from shared.events import AccountOpened, CardIssued, ContributionHeld, new_event
from shared.domain import Decision
from shared.outbox import AggregateStore, _uuid4s, event_id
from tests.unit.memory_collection import BulkResult, MemoryCollection

AT = datetime(2026, 2, 1, tzinfo=UTC)


def _store() -> AggregateStore[Account]:
    return AggregateStore(MemoryCollection("accounts"), service="bank", state_type=Account)  # type: ignore[arg-type]


def test_stored_events_are_the_envelopes_json_dump() -> None:
    store = _store()
    cause = new_event(CardIssued(person_id="P1", card_number="6216610000000000017", agent_bank="B"),
                      source="/medcard/cards", partitionkey="P1", sequence=1, correlationid="corr")
    events = [AccountOpened(person_id="P1", account_id="PMA-P1", card_number="6216610000000000017"),
              ContributionHeld(person_id="P1", contribution_id="C1", month="2026-01", amount_fen=5, reason="r")]
    decision: Decision[Account] = Decision(Account(person_id="P1"), events)
    expected = [new_event(data, source=store.source, partitionkey="P1", sequence=3 + i, correlationid="corr",
                          causationid=cause.id, subject="6216610000000000017" if i == 1 else "P1"
                          ).model_dump(mode="json") for i, data in enumerate(decision.events, start=1)]
    stored = store._stored("P1", 3, events, "corr", cause.id)
    # The envelopes a command's caller gets are the stored events, field for field.
    assert [e.model_dump(mode="json") for e in store._envelopes(stored, events)] == stored
    assert [{**s, "id": None, "time": None} for s in stored] == [{**e, "id": None, "time": None} for e in expected]
    assert [list(s) for s in stored] == [list(e) for e in expected]  # the same fields, in the same order
    for s in stored:
        assert datetime.fromisoformat(s["time"]).tzinfo is not None and s["time"].endswith("Z")
        assert uuid.UUID(s["id"]).version == 4
    assert store._stored("P1", 3, [], "corr", None) == []


def test_event_ids_are_random_version_4_uuids() -> None:
    ids = _uuid4s(1000) + [event_id() for _ in range(600)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_write_sets_only_what_changed() -> None:
    acc = domain.issue_card("P1", "6216610000000000017", None, AT)(None).state
    assert acc is not None
    doc = {"_id": "P1", **acc.model_dump(mode="json"), "version": 1, "rev": 4, "seq": {"cards:P1": 1}}
    after = domain.record_contribution("P1", "C1", "2026-01", 500)(_store().state_of(doc)).state
    assert after is not None
    write = AggregateStore._update(doc, after.model_dump(mode="json"), {"identity:P1": 2}, [], 1)
    assert write._filter == {"_id": "P1", "rev": 4}
    assert write._doc == {"$set": {"credit_due_from": "2026-01", "seq.identity:P1": 2, "version": 1, "rev": 5},
                          "$push": {"contributions": {"$each": [{"contribution_id": "C1", "month": "2026-01",
                                                                 "amount_fen": 500, "credited": False}]}}}
    credited = domain.credit_month_end("2026-01", date(2026, 1, 31), AT)(after)
    assert credited.state is not None
    done = {**doc, **after.model_dump(mode="json")}
    write = AggregateStore._update(done, credited.state.model_dump(mode="json"), {"clock:clock": 1}, [], 2)
    changed = {**write._doc["$set"], **write._doc["$push"]}
    assert sorted(changed) == ["balance_fen", "contributions", "credit_due_from", "ledger", "rev", "seq.clock:clock",
                               "version"]
    assert write._doc["$set"]["contributions"] == []  # credited, it left: the list is set
    assert len(write._doc["$push"]["ledger"]["$each"]) == 1  # only grew: its new item is pushed
    stored = [{"sequence": 2}]
    write = AggregateStore._update(doc, None, {"x:Y": 3}, stored, 2)
    assert write._doc == {"$set": {"seq.x:Y": 3, "version": 2, "rev": 5, "pending": True},
                          "$push": {"outbox": {"$each": stored}}}


def test_an_accounts_copy_changes_nothing_of_the_original() -> None:
    acc = Account(person_id="P1", account_id="PMA-P1", cards=[CardState(number="1")],
                  contributions=[Contribution(contribution_id="C1", month="2026-01", amount_fen=5)],
                  receipts=[Receipt(receipt_number="R1", card_number="1", requested_on=date(2026, 1, 2))])
    before = acc.model_dump()
    copy = acc.clone()
    copy.cards[0].status = "lost"
    copy.cards.append(CardState(number="2"))
    copy.contributions[0].credited = True
    copy.receipts[0].card_number = "2"
    copy.ledger.append(domain.LedgerEntry(reference="C1", kind="credit", amount_fen=5, business_date=date(2026, 1, 31),
                                          recorded_at=AT, card_number="1", description="d"))
    copy.balance_fen = 5
    assert acc.model_dump() == before
    assert acc.clone().model_dump() == before == acc.model_copy(deep=True).model_dump()


class CountingWrites(MemoryCollection):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.bulk_writes = 0

    async def bulk_write(self, requests: list[Any], ordered: bool = True) -> BulkResult:
        self.bulk_writes += 1
        return await super().bulk_write(requests, ordered)


def _hold_once(state: Account | None) -> Decision[Account]:
    """Acts only on an account that holds nothing yet (a second try decides nothing)."""
    assert state is not None
    if state.contributions:
        return Decision(state)
    held = Contribution(contribution_id="C1", month="2026-01", amount_fen=5)
    return Decision(state.model_copy(update={"contributions": [held]}), [ContributionHeld(
        person_id=state.person_id, contribution_id="C1", month="2026-01", amount_fen=5, reason="r")])


def test_commands_on_documents_just_read_are_saved_by_one_write_and_a_lost_guard_decides_again() -> None:
    collection = CountingWrites("accounts")
    store: AggregateStore[Account] = AggregateStore(collection, service="bank", state_type=Account)  # type: ignore[arg-type]
    ids = ["P1", "P2", "P3"]

    async def run() -> None:
        for person in ids:
            opened = Account(person_id=person)
            await store.execute(person, lambda _, a=opened: Decision(a), correlation_id="open")
        docs = await collection.find({}).to_list()
        collection.bulk_writes = 0
        items = [(doc, store.state_of(doc), _hold_once, "c") for doc in docs]
        assert await store.execute_loaded(items) == [None] * 3
        assert collection.bulk_writes == 1

        # Another writer moves P2 after the read: the batch falls back to reading and deciding
        # again, and what the bulk write did save is not decided twice.
        for doc in collection.docs.values():
            doc["contributions"] = []
        docs = await collection.find({}).to_list()
        await collection.update_one({"_id": "P2"}, {"$set": {"rev": docs[1]["rev"] + 1}})
        assert await store.execute_loaded([(doc, store.state_of(doc), _hold_once, "c") for doc in docs]) == [None] * 3

    asyncio.run(run())
    for person in ids:
        held = [e for e in collection.docs[person]["outbox"] if ".ContributionHeld." in e["type"]]
        assert len(held) == 2, (person, held)  # one from each round, never a third
        assert len(collection.docs[person]["contributions"]) == 1
