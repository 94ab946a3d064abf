"""The MongoDB-wire server stopped while the bank and the cards service (real processes) are
under load, then started again. Meanwhile they say they are not ready, refuse every command
with a clean 503 and a JSON reason within seconds (never a 500, never a hang), keep the events
that arrive for later; then they recover by themselves and nothing is half-done."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shared.ids import new_id
from shared.settings import Settings
from tests.faults.support import (
    as_role,
    background,
    balances_settled,
    cardholders,
    caught_up,
    check_log,
    check_money,
    http,
    known_to_cards,
    outbox_empty,
    processes,
    read_topics,
    server_down,
)
from tests.helpers import eventually
from tests.integration.bank_support import EventSource

pytestmark = pytest.mark.infra

PERSONS = 10
WAITING = 40
"""Registered persons without a card: the cards service issues theirs under load."""
PIN = "135790"
MERCHANT = "PH-9"
SLOW = 15.0
"""No answer may take longer than this, database or not: a refusal comes after the 3 s server
selection timeout, the rest is room for a loaded machine (the client gives up at 30 s)."""


@dataclass
class Answer:
    service: str
    what: str
    status: int
    seconds: float
    body: Any
    during_outage: bool
    subject: str = ""

    @property
    def ambiguous(self) -> bool:
        """No answer, or a 503 that says a change in flight may have been made: the command's
        outcome is unknown to the client (and must be looked up, not blindly retried)."""
        return self.status == 0 or (self.status == 503 and "may or may not" in str(self.body))


async def test_a_database_outage_is_refused_cleanly_and_recovered_from(
    settings: Settings, infra: Any,
) -> None:
    with processes(settings) as procs:
        bank_proc, cards_proc = await procs.run_all(("bank", 8210), ("cards", 8211))
        async with http(bank_proc.url, 30) as bank, http(cards_proc.url, 30) as cards, EventSource(settings) as src:
            clerk, teller = as_role(settings, "clerk"), as_role(settings, "teller")
            r = await bank.post("/v1/merchants", headers=as_role(settings, "operator"), json={
                "merchant_id": MERCHANT, "name": "Tongrentang", "kind": "pharmacy", "designated": True})
            assert r.status_code == 201, r.text
            holders = await cardholders(src, cards, bank, settings, PERSONS, pin=PIN)
            persons = [h.person_id for h in holders]
            card = {h.person_id: h.card for h in holders}
            waiting = [(await src.person())[0] for _ in range(WAITING)]
            for person in waiting:
                await eventually(lambda p=person: known_to_cards(cards, settings, p), timeout=60)  # type: ignore[misc]

            answers: list[Answer] = []
            outage = asyncio.Event()
            outage_began = asyncio.Event()  # set once: the issuer keeps persons for the outage
            stop = asyncio.Event()
            issued: dict[str, str] = {}
            to_issue = list(waiting)
            found_later: list[str] = []

            async def call(service: str, what: str, client: httpx.AsyncClient, method: str, path: str,
                           subject: str = "", **kwargs: Any) -> Answer:
                started = time.monotonic()
                try:
                    r = await client.request(method, path, **kwargs)
                except httpx.TransportError as err:  # no answer at all: status 0, and the test fails below
                    status, body = 0, repr(err)
                else:
                    json_body = r.headers.get("content-type", "").startswith("application/json")
                    status, body = r.status_code, (r.json() if json_body else r.text)
                answer = Answer(service, what, status, time.monotonic() - started, body, outage.is_set(), subject)
                answers.append(answer)
                return answer

            async def buyer() -> None:
                headers = as_role(settings, "merchant", sub=MERCHANT)
                for person in itertools.cycle(persons):
                    if stop.is_set():
                        return
                    await call("bank", "purchase", bank, "POST", "/v1/pos/authorisations", headers=headers, json={
                        "transaction_id": new_id("T"), "card_number": card[person], "pin": PIN,
                        "merchant_id": MERCHANT, "amount_fen": 150, "kind": "purchase"})
                    await asyncio.sleep(0.05)

            async def issuer() -> None:
                while to_issue and not stop.is_set():
                    if len(issued) >= 3 and not outage_began.is_set():  # a fast database would issue
                        await asyncio.sleep(0.05)                         # all 40 before the outage
                        continue
                    person = to_issue[0]
                    a = await call("cards", "issue", cards, "POST", "/v1/cards", person, headers=clerk,
                                   json={"person_id": person})
                    if a.status == 201:
                        issued[person] = a.body["card_number"]
                        to_issue.pop(0)
                    elif a.status == 409:  # "already has a card": an earlier try was made after all
                        r = await cards.get(f"/v1/persons/{person}/cards", headers=clerk)
                        [held] = r.json()["data"]
                        issued[person] = held["card_number"]
                        found_later.append(person)
                        to_issue.pop(0)
                    await asyncio.sleep(0.05)

            async def reader() -> None:
                for person in itertools.cycle(persons):
                    if stop.is_set():
                        return
                    await call("bank", "account", bank, "GET", f"/v1/accounts/{person}", headers=teller)
                    await call("cards", "cards", cards, "GET", f"/v1/persons/{person}/cards", headers=clerk)
                    await asyncio.sleep(0.05)

            async def ready(service: str, client: httpx.AsyncClient) -> None:
                while not stop.is_set():
                    await call(service, "ready", client, "GET", "/ready")
                    await asyncio.sleep(0.2)

            async def seen(since: int, service: str, what: str, statuses: tuple[int, ...], times: int = 3) -> None:
                """``times`` answers of that kind with one of these statuses, since ``since``."""
                def mine() -> list[Answer]:
                    return [a for a in answers[since:] if (a.service, a.what) == (service, what)]
                try:
                    await eventually(lambda: _true(sum(a.status in statuses for a in mine()) >= times), timeout=90)
                except AssertionError:
                    tally = Counter((a.service, a.what, a.status) for a in answers[since:])
                    raise AssertionError(f"{service} {what} never answered {statuses} {times} times; answers since: "
                                         f"{dict(tally)}; its last: {mine()[-3:]}") from None

            async with background(buyer(), buyer(), issuer(), reader(), ready("bank", bank),
                                  ready("cards", cards)) as load:
                await seen(0, "bank", "purchase", (200,))
                await seen(0, "cards", "issue", (201,))
                # The database goes away under load.
                outage.set()
                async with server_down(infra.controls.stop_mongo, infra.controls.start_mongo):
                    stopped_at = len(answers)
                    outage_began.set()
                    # Events arriving meanwhile wait for the database; they are never dead-lettered.
                    late, _ = await src.person()
                    await src.contribution(persons[1], "2026-02", 7_000)
                    for service, what in (("bank", "ready"), ("cards", "ready"), ("bank", "purchase"),
                                          ("cards", "issue"), ("bank", "account"), ("cards", "cards")):
                        await seen(stopped_at, service, what, (503,))
                outage.clear()
                restarted_at, left_to_issue = len(answers), len(to_issue)
                # Recovered by themselves: ready again, and commands are accepted again (as
                # many issues as there are persons left: the outage held back at least one).
                for service, what in (("bank", "ready"), ("cards", "ready"), ("bank", "purchase")):
                    await seen(restarted_at, service, what, (200, 201))
                await seen(restarted_at, "cards", "issue", (201, 409), times=min(3, left_to_issue))
                stop.set()
                await asyncio.gather(*load)
            if to_issue:  # the last try may have been made without its answer arriving
                r = await cards.get(f"/v1/persons/{to_issue[0]}/cards", headers=clerk)
                for held in r.json()["data"]:
                    issued[to_issue[0]] = held["card_number"]
                    found_later.append(to_issue[0])

            # Never a 500, never a hang; every refusal a clean 503 with a JSON reason. A 409 only
            # for a card whose earlier request's outcome was unknown (and said so).
            odd = [a for a in answers if a.status not in (200, 201, 503)
                   and not (a.status == 409 and a.subject in found_later)]
            assert odd == [], odd[:5]
            for person in found_later:
                tries = [a for a in answers if a.what == "issue" and a.subject == person]
                assert any(a.ambiguous for a in tries), tries
            slowest = max(answers, key=lambda a: a.seconds)
            assert slowest.seconds < SLOW, slowest
            for a in answers:
                if a.status == 503 and a.what != "ready":
                    assert a.body["error"] == "unavailable" and "database" in a.body["detail"], a
                elif a.status == 503:
                    assert a.body["database"] is False, a

            # Nothing half-done: what was accepted is all there is, events and state together.
            await eventually(lambda: caught_up(settings, settings.group_id("bank"), ["identity", "cards"]),
                             timeout=90, interval=0.5)
            await src.month_end("2026-02")

            async def drained() -> bool:
                return (await outbox_empty(bank, settings) and await outbox_empty(cards, settings)
                        and await caught_up(settings, settings.group_id("bank"), ["identity", "cards"])
                        and await caught_up(settings, f"{settings.group_id('bank')}.clock", ["clock"])
                        and await caught_up(settings, settings.group_id("cards"), ["identity", "clock", "bank"])
                        and await balances_settled(bank, settings, persons))
            await eventually(drained, timeout=90, interval=0.5)
            bank_log = check_log(await read_topics(settings, ["bank"]))
            cards_log = check_log(await read_topics(settings, ["cards"]))
            answered = {a.body["authorisation_id"] for a in answers if a.what == "purchase" and a.status == 200}
            on_topic = {e.data.authorisation_id for e in  # type: ignore[attr-defined]
                        bank_log.events("PurchaseAuthorised") + bank_log.events("PurchaseDeclined")}
            assert answered <= on_topic
            assert len(on_topic - answered) <= sum(a.ambiguous for a in answers if a.what == "purchase")
            issued_on_topic = {e.data.card_number for e in cards_log.events("CardIssued")}  # type: ignore[attr-defined]
            assert issued_on_topic == set(card.values()) | set(issued.values())
            for person in persons + list(issued):
                r = await cards.get(f"/v1/persons/{person}/cards", headers=clerk)
                usable = [c for c in r.json()["data"] if c["state"] in ("pending_activation", "active")]
                assert len(usable) <= 1, r.json()
            # The events that arrived during the outage were applied after it.
            await eventually(lambda: known_to_cards(cards, settings, late), timeout=60)
            assert [e.data.amount_fen for e in bank_log.events("MonthlyTransfer")  # type: ignore[attr-defined]
                    if e.partitionkey == persons[1]] == [20_000, 7_000]
            await check_money(bank, settings, bank_log, persons)
            assert await read_topics(settings, ["identity", "cards", "clock", "bank"], dlq=True) == []
            print(Counter((a.service, a.what, a.status, a.during_outage) for a in answers), slowest,
                  f"found later: {found_later}; purchases made despite no answer: {len(on_topic - answered)}")


async def _true(value: bool) -> bool:
    return value
