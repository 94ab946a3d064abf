"""The bank, a real uvicorn process, sent SIGTERM while identity's and cards' events stream
in: it finishes the batch in hand, commits it, leaves its group and exits cleanly; started
again it carries on where it stopped, every account opened exactly once; its JSON log
lines name the event and correlation id they are about."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import date

import httpx
import pytest

from shared.events import CardLost
from shared.settings import Settings

from tests.faults.support import as_role, caught_up, http, processes, read_topics
from tests.helpers import eventually
from tests.integration.bank_support import EventSource

pytestmark = pytest.mark.infra

BEFORE, DURING = 15, 40


async def test_sigterm_stops_the_bank_cleanly_and_it_resumes_where_it_stopped(settings: Settings) -> None:
    with processes(settings) as procs:
        bank_proc = procs.process("bank", 8220)
        bank_proc.env["MEDCARD_LOG_LEVEL"] = "INFO"
        await procs.start(bank_proc)
        persons: list[str] = []
        cards: dict[str, str] = {}
        async with EventSource(settings) as src:
            for _ in range(BEFORE):
                person, _ = await src.person()
                cards[person] = await src.card(person)
                persons.append(person)
            async with http(bank_proc.url) as bank:
                await eventually(lambda: all_known(bank, settings, persons), timeout=60)

            # More events stream in; SIGTERM arrives while the bank is applying them.
            async def stream() -> None:
                for _ in range(DURING):
                    person, _ = await src.person()
                    await src.card(person)
                    persons.append(person)
            streaming = asyncio.create_task(stream())
            await asyncio.sleep(0.5)
            began = time.monotonic()
            await asyncio.to_thread(bank_proc.stop, 60.0)
            stopped_in = time.monotonic() - began
            await streaming

        log = bank_proc.log_file.read_text(errors="replace")
        last_run = log[log.rindex("service.started"):]
        assert stopped_in < 15, f"SIGTERM took {stopped_in:.1f} s: the process did not stop by itself"
        assert '"consumer.stopped"' in last_run and '"service.stopped"' in last_run, last_run[-2000:]
        assert "Finished server process" in last_run
        assert "Traceback" not in last_run and "consumer.stop_cancelled_a_batch" not in last_run

        # Started again: it applies what was left, and nothing twice.
        await procs.start(bank_proc)
        async with http(bank_proc.url) as bank:
            await eventually(lambda: all_known(bank, settings, persons), timeout=90)

        async def committed_everything() -> bool:
            return await caught_up(settings, settings.group_id("bank"), ["identity", "cards"])
        await eventually(committed_everything, timeout=60)
        opened = Counter(r.event.data.person_id for r in await read_topics(settings, ["bank"])  # type: ignore[attr-defined]
                         if r.event.name == "AccountOpened")
        assert opened == Counter(persons), "each person's account is opened exactly once"

        # Its logs are JSON lines naming the event and the correlation id they are about.
        async with EventSource(settings) as src:
            src.sequences[("cards", persons[0])] = 1
            loss = await src.publish(CardLost(person_id=persons[0], card_number=cards[persons[0]], channel="online",
                                              voucher="V-log", business_date=date(2026, 3, 2)), persons[0])

        def loss_lines() -> list[dict[str, object]]:
            lines = [json.loads(line) for line in bank_proc.log_file.read_text(errors="replace").splitlines()
                     if line.startswith("{")]
            return [line for line in lines if line.get("msg") == "bank.loss_applied"]

        async def logged() -> bool:
            return bool(loss_lines())
        await eventually(logged, timeout=60)
        [line] = loss_lines()
        assert (line["event_id"], line["correlation_id"], line["event_type"], line["service"]) == (
            loss.id, loss.correlationid, "CardLost", "bank")


async def all_known(bank: httpx.AsyncClient, settings: Settings, persons: list[str]) -> bool:
    for person in persons:
        resp = await bank.get(f"/v1/accounts/{person}", headers=as_role(settings, "operator"))
        if resp.status_code != 200:
            return False
    return True
