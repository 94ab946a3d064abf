"""What the bank's routes and handlers work with: the account and merchant stores, the
lookup indexes (card number -> person, receipt number -> person), the business clock and
the settings its rules read; and the FastAPI dependencies that hand them, and the caller's
role, to a route."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Annotated, Any, Self

from fastapi import Depends, Request
from pymongo.asynchronous.collection import AsyncCollection

from shared.app import configure
from shared.auth import Principal, require_roles
from shared.bounded import stop_if_cancelled
from shared.clock import BusinessClock
from shared.database import drop_index, find_flagged, flag_index
from shared.domain import NotFound
from shared.events import CloudEvent
from shared.logging import get_logger
from shared.outbox import AggregateStore
from shared.service import ServiceRuntime
from shared.settings import Settings

from .model import Account, LedgerEntry, Merchant
from .projections import index_entry


@dataclass
class Bank:
    runtime: ServiceRuntime
    accounts: AggregateStore[Account]
    merchants: AggregateStore[Merchant]
    card_index: AsyncCollection[dict[str, Any]]
    receipt_index: AsyncCollection[dict[str, Any]]
    ledger_archive: AsyncCollection[dict[str, Any]]
    """Postings moved out of their account at a month end (``domain.move_archived``): one
    document each, ``_id`` ``<person>/<reference>``, written before they leave the account."""
    clock: BusinessClock
    settings: Settings
    """The service's settings (``runtime.settings``): the PIN tries allowed, the ID digest
    key, the loss-report policy."""
    known_cards: dict[str, str] = field(default_factory=dict)
    """Card number -> person, as read from ``card_index``: a number belongs to one person for
    ever (see ``projections.index``), so a number found once needs no second read."""
    known_merchants: dict[str, Merchant] = field(default_factory=dict)
    """Registered merchants as read: a merchant is registered once and never changed
    (``domain.register_merchant``), so one found once needs no second read. An unknown
    merchant or card is read every time (it may be registered or issued meanwhile)."""

    @classmethod
    def configure(cls, settings: Settings | None) -> Settings:
        return configure(settings)

    @classmethod
    def wire(cls, runtime: ServiceRuntime) -> Self:
        bank = cls(
            runtime=runtime,
            accounts=runtime.store("accounts", Account),
            merchants=runtime.store("merchants", Merchant),
            card_index=runtime.db["card_index"],
            receipt_index=runtime.db["receipt_index"],
            ledger_archive=runtime.db["ledger_archive"],
            clock=BusinessClock(runtime.db),
            settings=runtime.settings,
        )
        runtime.setup_hooks.append(bank.setup)
        runtime.background.append(bank.warm_card_cache)
        runtime.business_date = bank.clock.current
        return bank

    @property
    def nightly(self) -> bool:
        """Loss reports are kept for the business day's end (the ``nightly`` policy)."""
        return self.settings.bank_loss_propagation == "nightly"

    async def setup(self) -> None:
        """Indexes for the nightly losses and the held list; load the business date. The
        month end reads the accounts in ``_id`` order (its pages), so the index of
        ``credit_due_from`` of before, which every account write added to, is dropped."""
        await drop_index(self.accounts.collection, "credit_due_from_1")
        await flag_index(self.accounts.collection, "losses_pending")
        await flag_index(self.accounts.collection, "held")
        await self.ledger_archive.create_index("person_id")
        await self.clock.load()

    async def person_of_card(self, card_number: str) -> str | None:
        if (person_id := self.known_cards.get(card_number)) is not None:
            return person_id
        doc = await self.card_index.find_one({"_id": card_number})
        if doc is None:
            return None
        _remember(self.known_cards, card_number, doc["person_id"])
        return doc["person_id"]  # type: ignore[no-any-return]

    async def warm_card_cache(self) -> None:
        """Remember the cards' persons at start (up to ``KNOWN_LIMIT``), read in one pass of
        ``card_index``: a restarted bank read each card again at its first swipe (100,000
        reads in the first half hour of the 100,000-person run, each a round trip while a
        terminal waits). An error leaves the cache to fill swipe by swipe, as before."""
        cursor = self.card_index.find({}, {"person_id": 1}, batch_size=WARM_BATCH)  # one cursor, once
        try:
            async for doc in cursor:
                if len(self.known_cards) >= KNOWN_LIMIT:
                    break
                self.known_cards.setdefault(doc["_id"], doc["person_id"])
        except Exception as err:
            stop_if_cancelled(err)
            log.warning("bank.card_cache_not_warmed", error=repr(err), cards=len(self.known_cards))
            return
        finally:
            with contextlib.suppress(Exception):
                await cursor.close()
        log.info("bank.card_cache_warmed", cards=len(self.known_cards))

    async def merchant(self, merchant_id: str) -> Merchant | None:
        """A registered merchant (None when it is not registered)."""
        if (merchant := self.known_merchants.get(merchant_id)) is not None:
            return merchant
        merchant = await self.merchants.get(merchant_id)
        if merchant is not None:
            _remember(self.known_merchants, merchant_id, merchant)
        return merchant

    async def person_of_receipt(self, receipt_number: str) -> str | None:
        doc = await self.receipt_index.find_one({"_id": receipt_number})
        return doc["person_id"] if doc else None

    def remember_cards(self, events: list[CloudEvent]) -> None:
        """The cards these events indexed (``projections.index_entry``), once their index is
        written: a card's first command (its first PIN, set just after it is issued) then
        needs no read of the index."""
        for entry in filter(None, map(index_entry, events)):
            name, number, person_id = entry
            if name == "card_index":
                _remember(self.known_cards, number, person_id)

    async def account_of_card(self, card_number: str) -> Account:
        """The account a card belongs to (404 when the bank does not know the card)."""
        return (await self.card_account_doc(card_number))[0]

    async def card_account_doc(self, card_number: str) -> tuple[Account, dict[str, Any]]:
        """The account a card belongs to and its document as read: a command on it passes the
        document to ``execute`` (``loaded``) instead of reading it again (404 when the bank
        does not know the card)."""
        person_id = await self.person_of_card(card_number)
        doc = await self.accounts.get_doc(person_id) if person_id else None
        account = self.accounts.state_of(doc)
        if account is None or doc is None or account.account_id is None or not account.has_card(card_number):
            raise unknown_card(card_number)
        return account, doc

    async def open_account(self, person_id: str) -> Account:
        account = await self.accounts.get(person_id)
        if account is None or account.account_id is None:
            raise NotFound(f"no personal medical account is open for person {person_id}")
        return account

    async def registered_merchants(self) -> list[dict[str, Any]]:
        """Every registered merchant, by id: its id, name, kind and designation."""
        fields = {"_id": 0, "merchant_id": 1, "name": 1, "kind": 1, "designated": 1}
        docs = await self.merchants.collection.find({}, fields).to_list()  # sorted here: see one_batch
        return sorted(docs, key=lambda d: d["merchant_id"])

    async def held_contributions(self) -> list[dict[str, Any]]:
        """Contributions paid for persons without a personal account yet, by person: each
        ``{person_id, contribution_id, month, amount_fen}``."""
        docs = await find_flagged(self.accounts.collection, "held", {"contributions": 1}).to_list()
        docs.sort(key=lambda d: d["_id"])  # here, not by the server: see one_batch
        return [{"person_id": d["_id"], **{k: c[k] for k in ("contribution_id", "month", "amount_fen")}}
                for d in docs for c in d["contributions"]]

    async def ledger_totals(self) -> tuple[int, int, int]:
        """Sum of all balances, credits and debits (the postings held by the accounts and
        the archived totals they keep)."""
        coll = self.accounts.collection
        sums = await (await coll.aggregate([{"$group": {
            "_id": None, "balance": {"$sum": "$balance_fen"},
            "credit": {"$sum": "$archived_credits_fen"}, "debit": {"$sum": "$archived_debits_fen"}}}])).to_list()
        postings = await (await coll.aggregate([
            {"$unwind": "$ledger"}, {"$group": {"_id": "$ledger.kind", "sum": {"$sum": "$ledger.amount_fen"}}},
        ])).to_list()
        held = {p["_id"]: p["sum"] for p in postings}
        archived = sums[0] if sums else {"balance": 0, "credit": 0, "debit": 0}
        return (archived["balance"], held.get("credit", 0) + archived["credit"],
                held.get("debit", 0) + archived["debit"])

    async def archived_postings(self, person_id: str) -> list[LedgerEntry]:
        """The person's postings in the ledger archive, oldest first."""
        docs = await self.ledger_archive.find({"person_id": person_id}, {"_id": 0, "person_id": 0}).to_list()
        entries = [LedgerEntry.model_validate(d) for d in docs]
        return sorted(entries, key=lambda e: (e.business_date, e.recorded_at))


KNOWN_LIMIT = 200_000
"""At most this many cards and merchants are remembered (the oldest are forgotten first)."""
WARM_BATCH = 10_000
"""Cards read per round trip when the cache is warmed at start."""
log = get_logger("bank")


def _remember(known: dict[str, Any], key: str, value: Any) -> None:
    known[key] = value
    if len(known) > KNOWN_LIMIT:
        del known[next(iter(known))]


def unknown_card(card_number: str) -> NotFound:
    """The answer for a card the bank does not know, and for a cardholder asking about someone else's."""
    return NotFound(f"card {card_number} is not linked to a personal account of this bank")


async def bank_of(request: Request) -> Bank:
    """The service's context (async: FastAPI runs a plain function in a worker thread)."""
    return request.app.state.context  # type: ignore[no-any-return]


BankDep = Annotated[Bank, Depends(bank_of)]
Operator = Annotated[Principal, Depends(require_roles("operator"))]
Teller = Annotated[Principal, Depends(require_roles("teller"))]
CardholderRole = Annotated[Principal, Depends(require_roles("cardholder"))]
HolderOrTeller = Annotated[Principal, Depends(require_roles("cardholder", "teller"))]
"""A card's holder logged in, or a teller at the counter (passwords, balances)."""
HolderOrStaff = Annotated[Principal, Depends(require_roles("cardholder", "teller", "operator"))]
"""A holder (their own account), or a teller or operator (anyone's)."""
TellerOrOperator = Annotated[Principal, Depends(require_roles("teller", "operator"))]
Staff = Annotated[Principal, Depends(require_roles("operator", "teller", "clerk"))]
"""Every staff role (the merchant registry is read at the counters too)."""
Terminal = Annotated[Principal, Depends(require_roles("merchant", "operator"))]
"""A merchant's POS terminal (or an operator testing one)."""
