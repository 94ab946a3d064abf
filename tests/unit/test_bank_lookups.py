"""The bank's lookups that the POS makes on every swipe: a card's person and a registered
merchant are read once and then remembered (neither ever changes); what is not found is
read again next time (it may be issued or registered meanwhile)."""

from __future__ import annotations

from typing import Any

from services.bank.deps import Bank
from services.bank.model import Account, Merchant
from shared.outbox import AggregateStore
from shared.settings import Settings
from tests.unit.memory_collection import MemoryCollection


def bank() -> tuple[Bank, MemoryCollection, MemoryCollection]:
    cards, merchants = MemoryCollection("card_index"), MemoryCollection("merchants")
    memory = MemoryCollection("accounts")
    accounts = AggregateStore(memory, service="bank", state_type=Account)  # type: ignore[arg-type]
    b = Bank(runtime=None, accounts=accounts,  # type: ignore[arg-type]
             merchants=AggregateStore(merchants, service="bank", state_type=Merchant),  # type: ignore[arg-type]
             card_index=cards, receipt_index=MemoryCollection("receipt_index"),  # type: ignore[arg-type]
             ledger_archive=MemoryCollection("ledger_archive"), clock=None,  # type: ignore[arg-type]
             settings=Settings())
    return b, cards, merchants


async def test_a_cards_person_is_read_once_and_an_unknown_card_every_time() -> None:
    b, cards, _ = bank()
    assert await b.person_of_card("6216") is None
    assert await b.person_of_card("6216") is None
    assert len(cards.queries) == 2
    cards.docs["6216"] = {"_id": "6216", "person_id": "P1"}
    assert await b.person_of_card("6216") == "P1"
    assert await b.person_of_card("6216") == "P1"
    assert len(cards.queries) == 3


async def test_a_registered_merchant_is_read_once_and_an_unknown_one_every_time() -> None:
    b, _, merchants = bank()
    assert await b.merchant("M-PH") is None
    doc: dict[str, Any] = {"_id": "M-PH", "merchant_id": "M-PH", "name": "Tongrentang", "kind": "pharmacy",
                           "designated": True, "version": 1, "rev": 1, "outbox": [], "pending": False}
    merchants.docs["M-PH"] = doc
    first = await b.merchant("M-PH")
    assert first is not None and first.designated
    assert await b.merchant("M-PH") == first
    assert len(merchants.queries) == 2
