"""Balances by channel, statements as JSON and CSV, and receipt stamps, against the real servers."""

from __future__ import annotations

import csv
import io
from datetime import date

import httpx
import pytest

from services.bank.app import create
from shared.events import BusinessDateAdvanced, ReplacementRequested
from shared.settings import Settings
from tests.helpers import eventually, running_service
from tests.integration.bank_support import BankClient, EventSource, bank_events, credited_account, funded_account, named

pytestmark = pytest.mark.infra


async def test_the_balance_is_told_by_channel_and_the_statement_lists_credits_and_debits(settings: Settings) -> None:
    async with EventSource(settings) as src, running_service(create, settings) as http:
        bank = BankClient(http, settings)
        await bank.merchant("M-PH")
        await bank.merchant("M-HO", kind="hospital", designated=False)
        person_id, card = await credited_account(src, bank, 9_000)
        await bank.swipe(card, "246810", "M-PH", 1_250)
        holder = bank.as_("cardholder", person_id=person_id)

        balance = f"/v1/cards/{card}/balance"
        for headers, channel in ((holder, "phone"), (bank.as_("teller"), "counter")):
            r = await http.get(balance, params={"channel": channel}, headers=headers)
            assert r.json() == {"card_number": card, "balance_fen": 7_750, "channel": channel}
        assert (await http.get(balance, headers=holder)).json()["channel"] == "online"
        assert (await http.get(balance, params={"channel": "counter"}, headers=holder)).status_code == 403
        # Issue 17: "pos" is no longer offered by this endpoint's channel list (it was, and refused with a 403).
        assert (await http.get(balance, params={"channel": "pos"}, headers=holder)).status_code == 422
        # A terminal asks with the card password (tests/integration/test_bank_pos.py), never by a GET.
        assert (await http.get(balance, headers=bank.as_("merchant", sub="M-PH"))).status_code == 403
        assert (await bank.inquire(card, "246810", "M-PH"))["balance_fen"] == 7_750
        assert (await http.get(balance, headers=bank.as_("cardholder", person_id="P-other"))).status_code == 404

        url = f"/v1/accounts/{person_id}/statement"
        period = {"from": "2026-01-01", "to": "2026-12-31"}
        statement = (await http.get(url, params=period, headers=holder)).json()
        assert (statement["opening_balance_fen"], statement["credits_fen"], statement["debits_fen"],
                statement["closing_balance_fen"]) == (0, 9_000, 1_250, 7_750)
        assert [(line["type"], line["balance_fen"]) for line in statement["lines"]] == [
            ("credit", 9_000), ("debit", 7_750)]
        assert statement["lines"][0]["business_date"] == "2026-01-31"
        # At the counter a teller prints it on the holder's ID card, in CSV; a wrong ID number gets nothing.
        teller = bank.as_("teller")
        assert (await http.get(url, params=period, headers=teller)).status_code == 403
        wrong = await http.post(url, json={**period, "id_number": (await src.person())[1], "format": "csv"}, headers=teller)
        assert wrong.status_code == 403 and "does not match the cardholder" in wrong.json()["detail"]
        r = await http.post(url, json={**period, "id_number": src.id_numbers[person_id], "format": "csv"},
                            headers=teller)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert [row["type"] for row in rows] == ["opening", "credit", "debit", "closing"]
        assert rows[-1]["balance_fen"] == "7750" and rows[2]["debit_fen"] == "1250"
        later = (await http.get(url, params={"from": "2026-02-01", "to": "2026-02-28"}, headers=holder)).json()
        assert (later["opening_balance_fen"], later["lines"]) == (9_000, [])
        assert (await http.get(url, headers=bank.as_("cardholder", person_id="P-other"))).status_code == 403
        assert (await http.get(url, params={"from": "2026-03-01", "to": "2026-02-01"}, headers=holder)
                ).status_code == 422
        events = await bank_events(settings, lambda es: len(named(es, "BalanceInquired")) >= 4)
    assert sorted(e.data.channel for e in named(events, "BalanceInquired")) == [  # type: ignore[attr-defined]
        "counter", "online", "phone", "pos"]


async def test_a_stamped_receipt_reports_the_loss_and_cannot_be_stamped_twice(settings: Settings) -> None:
    async with EventSource(settings) as src, running_service(create, settings) as http:
        bank = BankClient(http, settings)
        await bank.merchant("M-PH")
        person_id, card = await funded_account(src, bank, 4_000, "2026-01")
        await src.publish(ReplacementRequested(person_id=person_id, card_number=card, receipt_number="R000000000042",
                                               documents=["id_card", "household_register"],
                                               business_date=date(2026, 2, 2)), person_id)
        teller = bank.as_("teller")
        stamp = {"receipt_number": "R000000000042", "branch": "BOC Savings Office, Xidan", "seal": "BOC-XD-0420"}

        first: list[httpx.Response] = []

        async def stamped() -> bool:  # 404 until the bank has read the ReplacementRequested
            first[:] = [await http.post("/v1/stamps", json=stamp, headers=teller)]
            return first[0].status_code != 404
        await eventually(stamped)
        assert first[0].status_code == 201, first[0].text
        answer = first[0].json()
        assert answer["loss_reported"] is True and answer["card_number"] == card and answer["person_id"] == person_id
        assert (await http.post("/v1/stamps", json=stamp, headers=teller)).status_code == 409
        assert (await http.post("/v1/stamps", json={**stamp, "receipt_number": "R9"}, headers=teller)
                ).status_code == 404
        assert (await http.post("/v1/stamps", json=stamp, headers=bank.as_("clerk"))).status_code == 403
        assert (await bank.swipe(card, "246810", "M-PH", 100))["response_code"] == "41"
        events = await bank_events(settings, lambda es: bool(named(es, "BankStamped")))
    [event] = named(events, "BankStamped")
    assert event.data.loss_reported and event.data.seal == "BOC-XD-0420"  # type: ignore[attr-defined]


async def test_a_statement_asked_in_january_covers_december_by_default(settings: Settings) -> None:
    """Issue 17: the default period started on 1 January of the business year, so a
    statement asked in January missed December; it is now the last 12 months."""
    async with EventSource(settings) as src, running_service(create, settings) as http:
        bank = BankClient(http, settings)
        person_id, _ = await credited_account(src, bank, 4_200, month="2025-12")
        await src.publish(BusinessDateAdvanced(date=date(2026, 1, 15), previous_date=date(2026, 1, 14)), "clock")
        holder = bank.as_("cardholder", person_id=person_id)
        seen: dict[str, object] = {}

        async def asked_on_the_15th() -> bool:
            answer = await http.get(f"/v1/accounts/{person_id}/statement", headers=holder)
            seen.update(answer.json())
            return answer.status_code == 200 and seen["to_date"] == "2026-01-15"
        await eventually(asked_on_the_15th, timeout=30)
    assert (seen["from_date"], seen["credits_fen"], seen["closing_balance_fen"]) == ("2025-01-16", 4_200, 4_200)
