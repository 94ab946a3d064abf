"""The bank, a real uvicorn process, killed with SIGKILL while POS commands arrive at its API
and identity's and cards' events arrive through Kafka; then started again. Nothing the bank
accepted is lost, nothing is applied twice, and the money adds up to the fen."""

from __future__ import annotations

import asyncio
import itertools
from datetime import date
from typing import Any

import httpx
import pytest

from shared.events import CardLost
from shared.ids import new_id, new_reference
from shared.settings import Settings
from tests.faults.support import (
    as_role,
    balances_settled,
    background,
    caught_up,
    check_log,
    check_money,
    http,
    no_purchase_after_block,
    outbox_empty,
    processes,
    read_topics,
)
from tests.helpers import eventually
from tests.integration.bank_support import EventSource

pytestmark = pytest.mark.infra

PERSONS = 30
MERCHANTS = ("PH-1", "PH-2", "HOSP-1")
PIN = "246810"
BUYERS = 6


async def test_a_bank_killed_mid_stream_loses_nothing_and_applies_nothing_twice(
    settings: Settings,
) -> None:
    with processes(settings) as procs:
        bank_proc = await procs.run("bank", 8201)
        async with http(bank_proc.url, timeout=20) as bank, EventSource(settings) as src:
            # Before: people with a card, a password and a first month's transfer.
            persons: list[str] = []
            cards: dict[str, str] = {}
            contributions: set[str] = set()
            for i in range(PERSONS):
                person, _ = await src.person()
                cards[person] = await src.card(person)
                contributions.add((await src.contribution(person, "2026-01", 40_000 + i)).data.contribution_id)  # type: ignore[attr-defined]
                persons.append(person)
            for m in MERCHANTS:
                r = await bank.post("/v1/merchants", headers=as_role(settings, "operator"), json={
                    "merchant_id": m, "name": m, "kind": "pharmacy", "designated": True})
                assert r.status_code == 201, r.text
            await eventually(lambda: _all_known(bank, settings, persons), timeout=60)
            for person in persons:
                r = await bank.put(f"/v1/cards/{cards[person]}/password", headers=as_role(settings, "teller"),
                                   json={"pin": PIN, "id_number": src.id_numbers[person]})
                assert r.status_code == 200, r.text
            await src.month_end("2026-01")
            await eventually(lambda: balances_settled(bank, settings, persons), timeout=60)

            # The stream: POS terminals keep buying; contributions, losses and a month end keep coming.
            answers: list[dict[str, Any]] = []
            unknown = 0
            stop = asyncio.Event()
            lost: list[str] = persons[:4]
            next_person = itertools.cycle(persons)

            async def buyer(n: int) -> None:
                nonlocal unknown
                merchant = MERCHANTS[n % len(MERCHANTS)]
                headers = as_role(settings, "merchant", sub=merchant)
                while not stop.is_set():
                    person = next(next_person)
                    body = {"transaction_id": new_id("T"), "card_number": cards[person], "pin": PIN,
                            "merchant_id": merchant, "amount_fen": 100 + len(answers) % 50, "kind": "purchase"}
                    try:
                        r = await bank.post("/v1/pos/authorisations", headers=headers, json=body)
                    except httpx.ConnectError:  # down: the request never reached it
                        await asyncio.sleep(0.2)
                        continue
                    except httpx.TransportError:  # killed while the request was in flight
                        unknown += 1
                        continue
                    if r.status_code == 200:
                        answers.append({**r.json(), "person": person})
                    else:  # a 503 while starting again: refused, nothing done
                        assert r.status_code == 503, r.text
                        await asyncio.sleep(0.2)

            month_ended = asyncio.Event()

            async def events() -> None:
                """Contributions and losses, a month end, then next month's contributions
                until the buyers stop."""
                for i, person in enumerate(persons):
                    contributions.add((await src.contribution(person, "2026-02", 30_000 + i)).data.contribution_id)  # type: ignore[attr-defined]
                    if person in lost:
                        await src.publish(CardLost(person_id=person, card_number=cards[person], channel="online",
                                                   voucher=new_reference("V"), business_date=date(2026, 2, 3)),
                                          person)
                    await asyncio.sleep(0.05)
                await src.month_end("2026-02")
                month_ended.set()
                for i, person in enumerate(itertools.cycle(persons)):
                    if stop.is_set():
                        return
                    contributions.add((await src.contribution(person, "2026-03", 2_000 + i)).data.contribution_id)  # type: ignore[attr-defined]
                    await asyncio.sleep(0.05)

            async with background(events(), *(buyer(n) for n in range(BUYERS))) as streams:
                await eventually(lambda: _at_least(answers, 30), timeout=60)
                await asyncio.wait_for(month_ended.wait(), 120)
                # In the middle of both streams: SIGKILL, then start it again at once.
                await procs.kill(bank_proc)
                answered_before_kill = len(answers)
                await procs.start(bank_proc)
                await eventually(lambda: _at_least(answers, answered_before_kill + 30), timeout=90)
                stop.set()
                await asyncio.gather(*streams)
            # The month end comes through another group: only once every contribution is in.
            await eventually(lambda: caught_up(settings, settings.group_id("bank"), ["identity", "cards"]),
                             timeout=90, interval=0.5)
            await src.month_end("2026-03")

            # Drained: everything published and applied by both of the bank's consumer groups.
            async def drained() -> bool:
                return (await outbox_empty(bank, settings)
                        and await caught_up(settings, settings.group_id("bank"), ["identity", "cards"])
                        and await caught_up(settings, f"{settings.group_id('bank')}.clock", ["clock"])
                        and await balances_settled(bank, settings, persons))
            await eventually(drained, timeout=90, interval=0.5)

            log = check_log(await read_topics(settings, ["bank"]))
            # Every answered authorisation is on the topic once, as answered; the only other
            # ones are requests whose answer the kill cut off.
            on_topic = {e.data.authorisation_id: e for e in  # type: ignore[attr-defined]
                        log.events("PurchaseAuthorised") + log.events("PurchaseDeclined")}
            assert len(on_topic) == len(log.events("PurchaseAuthorised")) + len(log.events("PurchaseDeclined"))
            for a in answers:
                event = on_topic[a["authorisation_id"]]
                assert (event.name == "PurchaseAuthorised") == a["approved"], a
            assert len(on_topic) - len(answers) <= unknown
            # Each contribution transferred exactly once, none forgotten.
            transferred = [e.data.contribution_id for e in log.events("MonthlyTransfer")]  # type: ignore[attr-defined]
            assert sorted(transferred) == sorted(contributions)
            # Each loss applied once; nothing bought on a card after the bank blocked it.
            blocked = [e.data.card_number for e in log.events("CardBlocked")]  # type: ignore[attr-defined]
            assert sorted(blocked) == sorted(cards[p] for p in lost)
            no_purchase_after_block(log)
            assert any(a["response_code"] == "41" for a in answers)
            await check_money(bank, settings, log, persons)
            assert await read_topics(settings, ["identity", "cards", "clock", "bank"], dlq=True) == []
            print(f"answers={len(answers)} unknown={unknown} republished={log.republished} "
                  f"events={len(log.events())}")


async def _at_least(items: list[Any], n: int) -> bool:
    return len(items) >= n


async def _all_known(bank: httpx.AsyncClient, settings: Settings, persons: list[str]) -> bool:
    """Every account is open (its card known) with its contribution waiting for the month end."""
    for person in persons:
        r = await bank.get(f"/v1/accounts/{person}", headers=as_role(settings, "teller"))
        if r.status_code != 200 or not r.json()["pending_contributions"]:
            return False
    return True
