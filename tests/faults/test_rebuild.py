"""A service's projections rebuilt from the event log into a fresh database equal the live
ones, document for document (the per-aggregate sequence marks included); through the library
and through ``medcard projections``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from medcard.projections import projections_of
from services.bank.app import create as create_bank
from services.cards.app import create as create_cards
from services.notifications.app import create as create_notifications
from shared.events import (
    BusinessDateAdvanced,
    CardCancelled,
    CardLost,
    OnlineAccountClosed,
    OnlineAccountLocked,
    ReplacementRequested,
)
from shared.ids import new_reference
from shared.rebuild import RebuildError, compare, rebuild
from shared.settings import Settings
from shared.topics import topic_for_service
from tests.faults.support import as_role, caught_up
from tests.helpers import eventually, running_service
from tests.infra import REPO_ROOT
from tests.integration.bank_support import EventSource

pytestmark = pytest.mark.infra

PERSONS = 12
REPLACED = 3
MERCHANTS = 2
REVOKED = 2
"""Persons whose online account was locked or closed (their earlier tokens are refused)."""
EXPECTED = {
    "notifications": {"recipients": PERSONS, "merchants": MERCHANTS, "clock": 1,  # the clock: messages tell their business date
                      "token_revocations": REVOKED},
    "bank": {"card_index": PERSONS + REPLACED, "receipt_index": REPLACED, "clock": 1, "token_revocations": REVOKED},
    "cards": {"clock": 1, "token_revocations": REVOKED},
}
"""Documents in each service's projections after the history below."""


async def test_projections_rebuilt_from_the_log_equal_the_live_ones(settings: Settings) -> None:
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(running_service(create_cards, settings))
        await stack.enter_async_context(running_service(create_notifications, settings))
        bank = await stack.enter_async_context(running_service(create_bank, settings))
        src = await stack.enter_async_context(EventSource(settings))
        await history(settings, src, bank)
        groups = {"cards": ["identity", "clock", "bank"], "bank": ["identity", "cards"], "bank.clock": ["clock"],
                  "notifications": ["identity", "clock", "cards", "bank", "notifications"]}

        async def live_caught_up() -> bool:
            for group, sources in groups.items():
                service, _, suffix = group.partition(".")
                if not await caught_up(settings, settings.group_id(service) + (f".{suffix}" if suffix else ""),
                                       sources):
                    return False
            return True
        await eventually(live_caught_up, timeout=90, interval=0.5)

        for service, documents in EXPECTED.items():
            fresh = f"{settings.namespace}_rebuilt_{service}"
            report = await rebuild(settings, projections_of(service), fresh)
            assert report.documents == documents, (service, report)
            poisoned = "cards" in {s for p in projections_of(service) for s in p.sources}
            assert len(report.skipped) == (1 if poisoned else 0), report.skipped
            assert await compare(settings, projections_of(service), settings.database(service), fresh) == []
            # A rebuild never writes over what a database already holds.
            with pytest.raises(RebuildError, match="not empty"):
                await rebuild(settings, projections_of(service), fresh)

    # The command line: rebuild and compare (equal), then a live document goes wrong (differ).
    fresh = f"{settings.namespace}_cli"
    done = await medcard(settings, "projections", "rebuild", "notifications", "--into", fresh, "--compare")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"recipients: {PERSONS} documents" in done.stdout and "identical" in done.stdout, done.stdout
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:
        live = client[settings.database("notifications")]["recipients"]
        person = (await live.find_one({}))["_id"]  # type: ignore[index]
        await live.update_one({"_id": person}, {"$set": {"name": "Someone Else"}})
    finally:
        await client.close()
    differs = await medcard(settings, "projections", "compare", "notifications", "--against", fresh)
    assert differs.returncode == 1 and f"recipients {person}" in differs.stdout, differs.stdout + differs.stderr
    with pytest.raises(RebuildError, match="keeps no projection"):
        projections_of("identity")  # it consumes no other service's events


async def history(settings: Settings, src: EventSource, bank: httpx.AsyncClient) -> None:
    """People and cards, losses and replacements, online accounts locked and closed,
    merchants, days passing, and one record no consumer can read."""
    persons = [(await src.person())[0] for _ in range(PERSONS)]
    cards = {p: await src.card(p) for p in persons}
    day = date(2026, 3, 2)
    for person in persons[:REPLACED]:
        old = cards[person]
        await src.publish(CardLost(person_id=person, card_number=old, channel="online",
                                   voucher=new_reference("V"), business_date=day), person)
        await src.publish(ReplacementRequested(person_id=person, card_number=old, receipt_number=new_reference("R"),
                                               documents=["resident ID card"], business_date=day), person)
        cards[person] = await src.card(person, replaces=old)
        await src.publish(CardCancelled(person_id=person, card_number=old, reason="replaced",
                                        replaced_by=cards[person]), person)
    locked, closed = persons[-1], persons[-2]
    for _ in range(2):  # locked twice: the later lock holds
        await src.publish(OnlineAccountLocked(person_id=locked, account_number="acct-locked", failures=5,
                                              locked_until=datetime.now(UTC) + timedelta(minutes=15)), locked)
    await src.publish(OnlineAccountClosed(person_id=closed, account_number="acct-closed"), closed)
    for i in range(MERCHANTS):
        r = await bank.post("/v1/merchants", headers=as_role(settings, "operator"), json={
            "merchant_id": f"PH-{i}", "name": f"Pharmacy {i}", "kind": "pharmacy", "designated": True})
        assert r.status_code == 201, r.text
    for i in range(3):
        await src.publish(BusinessDateAdvanced(date=day + timedelta(days=i + 1), previous_date=day + timedelta(days=i)),
                          "clock")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic_for_service("cards", settings.namespace), b"\xff not an event", key=b"X")
    finally:
        await producer.stop()


async def medcard(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``medcard`` command, as an operator runs it, against the test's namespace."""
    env = {**os.environ, "MEDCARD_NAMESPACE": settings.namespace, "MEDCARD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "MEDCARD_MONGO_URL": settings.mongo_url, "COLUMNS": "200"}
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "medcard", *args], cwd=REPO_ROOT, env=env, capture_output=True,
        text=True, timeout=120, check=False)
