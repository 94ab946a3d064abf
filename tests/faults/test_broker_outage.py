"""The Kafka broker stopped while commands keep arriving at the cards and bank APIs (real
processes), concurrently, then started again: every command they accepted has its events
published after the restart, in order per card, and the consequences follow (a loss reported
during the outage blocks the card at the bank once the event gets through)."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from typing import Any

import pytest

from shared.ids import new_id
from shared.settings import Settings
from tests.faults.support import (
    Holder,
    as_role,
    background,
    caught_up,
    cardholders,
    check_log,
    check_money,
    http,
    known_to_cards,
    no_purchase_after_block,
    outbox_empty,
    processes,
    read_topics,
    server_down,
)
from tests.helpers import eventually
from tests.integration.bank_support import EventSource

pytestmark = pytest.mark.infra

PIN = "864200"
MERCHANT = "HOSP-7"


async def test_commands_accepted_while_the_broker_is_down_are_all_published_in_order_after(
    settings: Settings, infra: Any,
) -> None:
    with processes(settings) as procs:
        cards_proc, bank_proc = await procs.run_all(("cards", 8205), ("bank", 8206))
        async with http(cards_proc.url) as cards, http(bank_proc.url) as bank, EventSource(settings) as src:
            operator, clerk = as_role(settings, "operator"), as_role(settings, "clerk")
            r = await bank.post("/v1/merchants", headers=operator, json={
                "merchant_id": MERCHANT, "name": "People's Hospital", "kind": "hospital", "designated": True})
            assert r.status_code == 201, r.text
            holders = await cardholders(src, cards, bank, settings, 8, pin=PIN)
            waiting = [Holder(*(await src.person())) for _ in range(10)]
            for h in waiting:
                await eventually(lambda h=h: known_to_cards(cards, settings, h.person_id), timeout=60)
            losers = holders[:3]

            async def active(h: Holder) -> bool:
                r = await cards.get(f"/v1/cards/{h.card}", headers=clerk)
                return r.status_code == 200 and r.json()["state"] == "active"
            for h in holders:
                await eventually(lambda h=h: active(h), timeout=60)

            down = asyncio.Event()
            stop = asyncio.Event()
            accepted: Counter[str] = Counter()  # commands accepted while the broker was down
            purchases: list[dict[str, Any]] = []
            vouchers: dict[str, str] = {}
            merchants: list[str] = []

            def note(what: str) -> None:
                if down.is_set():
                    accepted[what] += 1

            async def buyer() -> None:
                headers = as_role(settings, "merchant", sub=MERCHANT)
                for h in itertools.cycle(holders):
                    if stop.is_set():
                        return
                    r = await bank.post("/v1/pos/authorisations", headers=headers, json={
                        "transaction_id": new_id("T"), "card_number": h.card, "pin": PIN, "merchant_id": MERCHANT,
                        "amount_fen": 210, "kind": "purchase"})
                    assert r.status_code == 200, r.text
                    purchases.append(r.json())
                    note("purchase")
                    await asyncio.sleep(0.05)

            async def agency() -> None:
                """Cards issued and losses reported, once the broker is down."""
                await down.wait()
                for h, lost in itertools.zip_longest(waiting, losers):
                    if h is not None:
                        r = await cards.post("/v1/cards", headers=clerk, json={"person_id": h.person_id})
                        assert r.status_code == 201, r.text
                        h.card = r.json()["card_number"]
                        note("card")
                    if lost is not None:
                        holder = as_role(settings, "cardholder", sub=lost.person_id, person_id=lost.person_id)
                        r = await cards.post("/v1/loss-reports/online", headers=holder, json={
                            "name": "Li Wei", "id_number": lost.id_number, "mobile": "13800138000"})
                        assert r.status_code == 201, r.text
                        vouchers[lost.card] = r.json()["voucher"]
                        note("loss")

            async def registry() -> None:
                await down.wait()
                for i in range(5):
                    merchant = f"PH-{i}"
                    r = await bank.post("/v1/merchants", headers=operator, json={
                        "merchant_id": merchant, "name": f"Pharmacy {i}", "kind": "pharmacy", "designated": True})
                    assert r.status_code == 201, r.text
                    merchants.append(merchant)
                    note("merchant")

            async with background(buyer(), buyer(), agency(), registry()) as load:
                await eventually(lambda: _enough(len(purchases), 10), timeout=60)
                async with server_down(infra.controls.stop_kafka, infra.controls.start_kafka):
                    down.set()
                    # Down: the services keep accepting; the events wait in their outboxes.
                    await eventually(lambda: _enough(min(accepted["purchase"], accepted["card"], accepted["loss"],
                                                         accepted["merchant"]), 3), timeout=60)
                    pending = [(await s.get("/ops/outbox", headers=operator)).json()["pending"]
                               for s in (cards, bank)]
                    assert all(p > 0 for p in pending), pending
                    await eventually(lambda: _enough(accepted["loss"], len(losers)), timeout=60)
                    down.clear()
                # Back: the bank hears of the losses; a thief's next try is refused.
                await eventually(lambda: _enough(sum(p["response_code"] == "41" for p in purchases), 3),
                                 timeout=120)
                stop.set()
                await asyncio.gather(*load)

            async def drained() -> bool:
                return (await outbox_empty(cards, settings) and await outbox_empty(bank, settings)
                        and await caught_up(settings, settings.group_id("bank"), ["identity", "cards"])
                        and await caught_up(settings, settings.group_id("cards"), ["identity", "clock", "bank"]))
            await eventually(drained, timeout=120, interval=0.5)

            cards_log = check_log(await read_topics(settings, ["cards"]))
            bank_log = check_log(await read_topics(settings, ["bank"]))
            # Every accepted command's events are there.
            authorisations = {e.data.authorisation_id for e in  # type: ignore[attr-defined]
                              bank_log.events("PurchaseAuthorised") + bank_log.events("PurchaseDeclined")}
            assert authorisations == {p["authorisation_id"] for p in purchases}
            registered = {e.data.merchant_id for e in bank_log.events("MerchantRegistered")}  # type: ignore[attr-defined]
            assert registered == {MERCHANT, *merchants}
            issued = {e.data.card_number for e in cards_log.events("CardIssued")}  # type: ignore[attr-defined]
            assert issued == {h.card for h in holders + waiting}
            lost = {e.data.card_number: e.data.voucher for e in cards_log.events("CardLost")}  # type: ignore[attr-defined]
            assert lost == vouchers
            # In order per card: issued, activated by its password, then lost (check_log has
            # checked every person's sequence is 1, 2, 3... in log order).
            for h in losers:
                story = [e.name for e in cards_log.by_key[h.person_id]]
                assert story == ["CardIssued", "CardActivated", "CardLost"], story
            # The bank blocked each lost card once; nothing was bought on one after that.
            blocked = [e.data.card_number for e in bank_log.events("CardBlocked")]  # type: ignore[attr-defined]
            assert sorted(blocked) == sorted(h.card for h in losers)
            no_purchase_after_block(bank_log)
            for h in holders + waiting:
                r = await cards.get(f"/v1/persons/{h.person_id}/cards", headers=clerk)
                usable = [c for c in r.json()["data"] if c["state"] in ("pending_activation", "active")]
                assert len(usable) <= 1, r.json()
            await check_money(bank, settings, bank_log, [h.person_id for h in holders])
            assert await read_topics(settings, ["identity", "cards", "clock", "bank"], dlq=True) == []
            print(accepted, len(purchases), "republished", cards_log.republished, bank_log.republished)


async def _enough(n: int, wanted: int) -> bool:
    return n >= wanted
