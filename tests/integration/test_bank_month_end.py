"""The monthly transfer against the real servers: exactly once per contribution, even
when month ends and contributions are delivered twice; held contributions; money kept;
older postings moved to the ledger archive."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pymongo import AsyncMongoClient

from services.bank.app import create
from shared.settings import Settings
from tests.helpers import running_service
from tests.integration.bank_support import BankClient, EventSource, bank_events, funded_account, named

pytestmark = pytest.mark.infra


def has_balance(fen: int) -> Callable[[dict[str, Any]], bool]:
    return lambda account: account["balance_fen"] == fen


async def test_a_month_end_credits_each_account_exactly_once_even_when_delivered_twice(settings: Settings) -> None:
    async with EventSource(settings) as src, running_service(create, settings) as http:
        bank = BankClient(http, settings)
        await bank.merchant("M-PH")
        people = []
        for i in range(3):
            person_id, card = await funded_account(src, bank, 1_000 * (i + 1), "2026-01")
            people.append((person_id, card))
        # Duplicates of one contribution: the same record twice, and republished as a new event.
        first = people[0][0]
        paid = await src.contribution(first, "2026-02", 500)
        await src.send(paid)
        await src.publish(paid.data, first)
        await bank.wait_account(first, lambda a: len(a["pending_contributions"]) == 2)

        january = await src.month_end("2026-01")
        await src.send(january)
        for i, (person_id, _) in enumerate(people):
            await bank.wait_account(person_id, has_balance(1_000 * (i + 1)))
        assert (await bank.swipe(people[1][1], "246810", "M-PH", 1_500))["approved"] is True
        await src.month_end("2026-02")
        await src.send(january)  # an old month end replayed after a later one: nothing to credit
        # A marker: once March is credited, everything published before it was applied.
        await src.contribution(first, "2026-03", 7)
        # (March's own: February's, until its month end is applied, would also be the one pending)
        await bank.wait_account(first, lambda a: [c["month"] for c in a["pending_contributions"]] == ["2026-03"])
        await src.month_end("2026-03")
        account = await bank.wait_account(first, lambda a: a["balance_fen"] == 1_000 + 500 + 7)
        assert account["pending_contributions"] == []
        assert [(await bank.wait_account(p))["balance_fen"] for p, _ in people[1:]] == [500, 3_000]

        events = await bank_events(settings, lambda es: len(named(es, "MonthlyTransfer")) >= 5)
        totals = (await http.get("/v1/ledger/totals", headers=bank.as_("operator"))).json()
    transfers = named(events, "MonthlyTransfer")
    credited = sorted((e.data.person_id, e.data.month) for e in transfers)  # type: ignore[attr-defined]
    assert credited == sorted([(p, "2026-01") for p, _ in people] + [(first, "2026-02"), (first, "2026-03")])
    # Money is conserved: balances = transfers - purchases, by the events and by the ledger.
    spent = sum(e.data.amount_fen for e in named(events, "PurchaseAuthorised"))  # type: ignore[attr-defined]
    received = sum(e.data.amount_fen for e in transfers)  # type: ignore[attr-defined]
    assert totals == {"balance_fen": received - spent, "credits_fen": received, "debits_fen": spent}


async def test_a_contribution_for_a_person_without_an_account_is_held_then_credited(settings: Settings) -> None:
    async with EventSource(settings) as src, running_service(create, settings) as http:
        bank = BankClient(http, settings)
        person_id, _ = await src.person()
        paid = await src.contribution(person_id, "2026-01", 2_500)
        held_url = "/v1/contributions/held"

        async def held() -> list[dict[str, object]]:
            return (await http.get(held_url, headers=bank.as_("teller"))).json()["data"]  # type: ignore[no-any-return]

        events = await bank_events(settings, lambda es: bool(named(es, "ContributionHeld")))
        assert named(events, "ContributionHeld")[0].data.contribution_id == paid.data.contribution_id  # type: ignore[attr-defined]
        assert await held() == [{"person_id": person_id, "contribution_id": paid.data.contribution_id,  # type: ignore[attr-defined]
                                 "month": "2026-01", "amount_fen": 2_500}]
        assert (await http.get(held_url, headers=bank.as_("cardholder", person_id=person_id))).status_code == 403
        # A month end with no account yet credits nothing; a funded neighbour shows it has run.
        neighbour, _ = await funded_account(src, bank, 100, "2026-01")
        await src.month_end("2026-01")
        await bank.wait_account(neighbour, has_balance(100))

        await src.card(person_id)
        account = await bank.wait_account(person_id)
        assert account["balance_fen"] == 0 and len(account["pending_contributions"]) == 1
        assert await held() == []
        await src.month_end("2026-02")
        await bank.wait_account(person_id, has_balance(2_500))


async def test_a_month_end_moves_older_postings_to_the_archive_and_statements_and_totals_stay_whole(
        settings: Settings) -> None:
    async with EventSource(settings) as src, running_service(create, settings) as http:
        bank = BankClient(http, settings)
        person_id, _ = await funded_account(src, bank, 1_000, "2026-01")
        await src.contribution(person_id, "2026-02", 300)
        await src.month_end("2026-01")
        # February's contribution held before February ends (the bank reads identity's topic and
        # the clock's in two groups: under load the month end could come first and credit nothing).
        await bank.wait_account(person_id, lambda a: has_balance(1_000)(a) and
                                [c["month"] for c in a["pending_contributions"]] == ["2026-02"])
        holder = bank.as_("cardholder", person_id=person_id)
        statement_url = f"/v1/accounts/{person_id}/statement?from=2026-01-01&to=2026-02-28"
        before = (await http.get(statement_url, headers=holder)).json()
        totals_url = "/v1/ledger/totals"
        totals_before = (await http.get(totals_url, headers=bank.as_("operator"))).json()

        february = await src.month_end("2026-02")
        await bank.wait_account(person_id, has_balance(1_300))
        await src.send(february)  # replayed: nothing moves or counts twice
        await src.contribution(person_id, "2026-03", 1)  # a marker: once it is held, the replay was applied
        await bank.wait_account(person_id, lambda a: [c["month"] for c in a["pending_contributions"]] == ["2026-03"])

        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
        try:
            db = client[settings.database("bank")]
            doc = await db["accounts"].find_one({"_id": person_id})
            archived = await db["ledger_archive"].find({"person_id": person_id}).to_list()
        finally:
            await client.close()
        assert doc is not None
        assert [e["business_date"] for e in doc["ledger"]] == ["2026-02-28"]  # February's transfer only
        assert [(a["business_date"], a["amount_fen"]) for a in archived] == [("2026-01-31", 1_000)]
        assert (doc["archived_credits_fen"], doc["archived_debits_fen"], doc["archived_before"]) == (
            1_000, 0, "2026-02-01")

        after = (await http.get(statement_url, headers=holder)).json()
        assert [line["reference"] for line in after["lines"]] == [
            *(line["reference"] for line in before["lines"]), doc["ledger"][0]["reference"]]
        assert (after["opening_balance_fen"], after["credits_fen"], after["closing_balance_fen"]) == (0, 1_300, 1_300)
        recent = (await http.get(f"/v1/accounts/{person_id}/statement?from=2026-02-01&to=2026-02-28",
                                 headers=holder)).json()
        assert (recent["opening_balance_fen"], len(recent["lines"]), recent["closing_balance_fen"]) == (1_000, 1, 1_300)
        totals = (await http.get(totals_url, headers=bank.as_("operator"))).json()
        assert totals["credits_fen"] - totals_before["credits_fen"] == 300
        assert totals["balance_fen"] - totals_before["balance_fen"] == 300
        assert totals["debits_fen"] == totals_before["debits_fen"]


async def test_a_started_bank_drops_the_month_end_index_no_read_uses(settings: Settings) -> None:
    """The month end pages through the accounts in ``_id`` order: the full index of
    ``credit_due_from`` of before only cost an entry on every account write, and a started
    bank drops it (a month end without it: the test above)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:
        accounts = client[settings.database("bank")]["accounts"]
        await accounts.create_index("credit_due_from")
        async with running_service(create, settings):
            info = await accounts.index_information()
        assert "credit_due_from_1" not in info
        assert {"losses_pending_1", "held_1"} <= set(info)
    finally:
        await client.close()
