"""``medcard card <number>`` against the real broker and the real cards and bank services:
the card's story from the topics, the state each service holds, disagreements flagged."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import date
from typing import Any

import httpx
import pytest

from medcard.console.app import create as create_console
from medcard.ops.dlq import dead_letters
from services.bank.app import create as create_bank
from services.cards.app import create as create_cards
from shared.auth import issue_token
from shared.events import CardLost, PersonRegistered
from shared.ids import id_digest
from shared.settings import Settings
from tests.helpers import auth, eventually
from tests.integration.ops_support import (
    event,
    free_port,
    json_lines,
    medcard,
    publish,
    serving,
)

pytestmark = pytest.mark.infra
PERSON = "P-story-1"
ID_NUMBER = "11010519491231002X"


def registered(settings: Settings) -> PersonRegistered:
    return PersonRegistered(person_id=PERSON, name="Wang Fang", id_number_masked="110***********002X",
                            id_number_digest=id_digest(settings.id_digest_key, ID_NUMBER), mobile="13800138000",
                            unit_id=None)


async def test_card_tells_the_story_and_flags_services_that_disagree(settings: Settings) -> None:
    with ExitStack() as stack:
        cards_url = stack.enter_context(serving(lambda: create_cards(settings)))
        bank_url = stack.enter_context(serving(lambda: create_bank(settings)))
        nobody = f"http://127.0.0.1:{free_port()}"  # identity and notifications are not running
        urls = ["--cards-url", cards_url, "--bank-url", bank_url, "--identity-url", nobody,
                "--notifications-url", nobody]
        await publish(settings, event(registered(settings), key=PERSON))

        async with httpx.AsyncClient(timeout=10) as http:
            # A clerk issues a card once cards knows the person; the bank opens the account.
            issued: dict[str, Any] = {}

            async def card_issued() -> bool:
                resp = await http.post(f"{cards_url}/v1/cards", json={"person_id": PERSON},
                                       headers=auth(settings, "clerk"))
                issued.update(resp.json())
                return resp.status_code == 201
            await eventually(card_issued, timeout=90, interval=0.5)
            number = issued["card_number"]

            async def bank_has(status: str) -> None:
                async def shown() -> bool:
                    resp = await http.get(f"{bank_url}/v1/accounts/{PERSON}", headers=auth(settings, "operator"))
                    cards = resp.json()["cards"] if resp.status_code == 200 else []
                    return any((c["card_number"], c["state"]) == (number, status) for c in cards)
                try:
                    await eventually(shown, timeout=90, interval=0.3)
                except AssertionError:  # say why, with the operators' own tool
                    letters = await dead_letters(settings)
                    raise AssertionError(f"the bank never showed card {number} {status}; dead letters: "
                                         f"{[(d.type, d.reason) for d in letters]}") from None
            await bank_has("pending_activation")  # its password is not set yet

            # The story: the holder's registration, then the card's own events, in order; all agree.
            [report] = json_lines(await medcard(settings, "card", number, "--json", *urls))
            assert report["holder"] == PERSON
            story = [(e["about"], e["event"]["name"]) for e in report["events"]]
            assert story[0] == ("holder", "PersonRegistered")
            assert ("card", "CardIssued") in story and ("card", "AccountOpened") in story
            states = {s["service"]: s for s in report["states"]}
            assert (states["cards"]["status"], states["cards"]["card_state"]) == ("ok", "pending_activation")
            assert (states["bank"]["status"], states["bank"]["card_state"]) == ("ok", "pending_activation")
            assert states["identity"]["status"] == states["notifications"]["status"] == "unreachable"
            assert report["disagreements"] == []

            # A loss the cards service never recorded reaches the bank: the two now disagree.
            issued_event = next(e["event"] for e in report["events"] if e["event"]["name"] == "CardIssued")
            await publish(settings, event(
                CardLost(person_id=PERSON, card_number=number, channel="bank", voucher="V-X",
                         business_date=date(2026, 3, 2)),
                key=PERSON, sequence=int(issued_event["envelope"]["sequence"]) + 1))
            await bank_has("lost")
            [report] = json_lines(await medcard(settings, "card", number, "--json", *urls))
            assert ("card", "CardLost") in [(e["about"], e["event"]["name"]) for e in report["events"]]
            assert report["disagreements"] == ["cards says pending_activation, bank says lost"]

            # In a terminal: the story table, each service's state, and the disagreement in words.
            shown = (await medcard(settings, "card", number, *urls)).stdout
            assert "CardIssued" in shown and "pending_activation" in shown and "unreachable" in shown
            assert "disagreement: cards says pending_activation, bank says lost" in shown

            # The operators' web console tells the same story, with the same disagreement.
            console_url = stack.enter_context(serving(lambda: create_console(settings, urls={
                "cards": cards_url, "bank": bank_url, "identity": nobody, "notifications": nobody})))
            operator = {"Authorization": f"Bearer {issue_token(settings, sub='ops-1', role='operator')}"}
            seen = (await http.get(f"{console_url}/api/cards/{number}/story", headers=operator)).json()
            assert seen["disagreements"] == ["cards says pending_activation, bank says lost"]
            assert {s["service"]: s["card_state"] for s in seen["states"]
                    if s["status"] == "ok"} == {"cards": "pending_activation", "bank": "lost"}
