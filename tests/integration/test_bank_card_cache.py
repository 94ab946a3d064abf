"""A bank that starts (or restarts) remembers the persons of the cards it knows from the
start, read in one pass of ``card_index``, instead of reading each card again at its first
swipe (100,000 reads in the first half hour of the 100,000-person run)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from services.bank.app import create as create_bank
from services.bank.deps import WARM_BATCH, Bank
from shared.settings import Settings
from tests.helpers import eventually, running_service
from tests.integration.bank_support import BankClient, EventSource

pytestmark = pytest.mark.infra
CARDS = WARM_BATCH * 2 + 500  # several batches


async def test_a_starting_bank_remembers_every_card_it_knows_without_a_read_per_card(settings: Settings) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:
        cards = client[settings.database("bank")]["card_index"]
        await cards.insert_many([{"_id": f"6216{k:015d}", "person_id": f"P{k}"} for k in range(CARDS)])
        apps: list[FastAPI] = []

        def factory(s: Settings) -> FastAPI:
            apps.append(create_bank(s))
            return apps[0]

        async with running_service(factory, settings):
            bank: Bank = apps[0].state.context

            async def warmed() -> bool:
                return len(bank.known_cards) == CARDS
            await eventually(warmed, timeout=60)
            assert bank.known_cards[f"6216{12345:015d}"] == "P12345"
            # Gone from the database, the card is still answered: from what was read at start.
            await cards.delete_one({"_id": f"6216{CARDS - 1:015d}"})
            assert await bank.person_of_card(f"6216{CARDS - 1:015d}") == f"P{CARDS - 1}"
            assert await bank.person_of_card("6216999999999999999") is None, "an unknown card is still read"
    finally:
        await client.close()


async def test_a_card_just_issued_is_known_and_its_first_password_costs_one_read_and_one_write(
        settings: Settings) -> None:
    """The bank remembers the cards its consumer has indexed, and a command on a card's
    account writes over the account as read: a card's first password (set right after it is
    issued, 100,000 of them in the city-sized run's set-up) no longer reads the card index
    and then the account twice."""
    apps: list[FastAPI] = []

    def factory(s: Settings) -> FastAPI:
        apps.append(create_bank(s))
        return apps[0]

    async with running_service(factory, settings) as http, EventSource(settings) as src:
        bank, client = apps[0].state.context, BankClient(http, settings)
        person_id, id_number = await src.person()
        card = await src.card(person_id)
        await client.wait_account(person_id, lambda a: bool(a["account_id"]))
        assert bank.known_cards.get(card) == person_id  # remembered as indexed, never read
        stats = bank.runtime.db_stats
        before = dict(stats.counts)
        await client.set_pin(card, "246810", id_number)
        spent = {k: n - before.get(k, 0) for k, n in stats.counts.items()
                 if n != before.get(k, 0) and k[1] in ("accounts", "card_index") and k[2] not in ("pending", "_id,version")}
        assert spent == {("find", "accounts", "_id"): 1, ("update", "accounts", "_id,rev"): 1}
        account = await client.account(person_id)
        assert account is not None and account["password_set"] is True
