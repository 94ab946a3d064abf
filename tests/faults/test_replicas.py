"""Two replicas of the bank (two processes, one consumer group) while identity's and cards'
events stream in; the second joins, and the first is killed with SIGKILL while the group is
rebalancing. The survivor takes every partition; no event is applied twice, none is lost."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from shared.settings import Settings
from shared.topics import TOPICS
from tests.faults.support import (
    as_role,
    balances_settled,
    caught_up,
    check_log,
    http,
    processes,
    read_topics,
)
from tests.helpers import eventually
from tests.integration.bank_support import EventSource

pytestmark = pytest.mark.infra

PERSONS = 60
REBALANCING = ("PreparingRebalance", "CompletingRebalance")


async def describe(settings: Settings, group: str) -> tuple[str, list[list[tuple[str, int]]]]:
    """The group's state and, per member, the partitions assigned to it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    [described] = response.to_object()["groups"]
    members = []
    for member in described["members"]:
        raw = member["member_assignment"]
        parts = ConsumerProtocolMemberAssignment.decode(raw).partitions() if raw else []
        members.append(sorted((tp.topic, tp.partition) for tp in parts))
    return described["state"], members


async def test_a_replica_killed_during_a_rebalance_leaves_its_partitions_to_the_survivor(
    settings: Settings, tmp_path: Path,
) -> None:
    group = settings.group_id("bank")
    every_partition = sorted((TOPICS[s].name(settings.namespace), p) for s in ("identity", "cards")
                             for p in range(TOPICS[s].partitions))
    with processes(settings, tmp_path) as procs:
        first = await procs.run("bank", 8215, replica="a")
        async with EventSource(settings) as src:
            persons: list[str] = []
            cards: dict[str, str] = {}
            contributions: dict[str, list[tuple[str, int]]] = {}

            async def contribute(person: str, amount: int) -> None:
                event = await src.contribution(person, "2026-01", amount)
                contributions.setdefault(person, []).append((event.data.contribution_id, amount))  # type: ignore[attr-defined]

            async def stream() -> None:
                """Each person registered, then (for every other one) paid for before the card
                exists, carded, paid for again."""
                for i in range(PERSONS):
                    person, _ = await src.person()
                    persons.append(person)
                    if i % 2:
                        await contribute(person, 5_000 + i)
                    cards[person] = await src.card(person)
                    await contribute(person, 10_000 + i)
                    await asyncio.sleep(0.1)

            feeding = asyncio.create_task(stream())
            await eventually(lambda: _at_least(len(persons), 10), timeout=60)
            state, members = await describe(settings, group)
            assert (state, len(members)) == ("Stable", 1), (state, members)

            # The second replica joins: the group rebalances; the first dies in the middle of it.
            second = procs.process("bank", 8216, replica="b")
            await asyncio.to_thread(second.start)
            deadline = time.monotonic() + 120
            while (state := (await describe(settings, group))[0]) not in REBALANCING:
                assert time.monotonic() < deadline, f"the group never rebalanced (state {state})"
                await asyncio.sleep(0.02)
            await procs.kill(first)
            assert not feeding.done(), "the event stream ended before the kill"
            await asyncio.to_thread(second.wait_ready, 120)
            await feeding

            # The survivor owns every partition and catches up.
            async def taken_over() -> bool:
                state, members = await describe(settings, group)
                return state == "Stable" and members == [every_partition]
            await eventually(taken_over, timeout=120, interval=0.5)
            await eventually(lambda: caught_up(settings, group, ["identity", "cards"]), timeout=120, interval=0.5)
            await src.month_end("2026-01")
            async with http(second.url) as bank:
                await eventually(lambda: balances_settled(bank, settings, persons), timeout=120, interval=0.5)

                # None lost, none applied twice: each account holds its card and exactly the
                # contributions paid, and is credited each of them once.
                teller = as_role(settings, "teller")
                for person in persons:
                    account = (await bank.get(f"/v1/accounts/{person}", headers=teller)).json()
                    assert [c["number"] for c in account["cards"]] == [cards[person]], account
                    assert account["balance_fen"] == sum(a for _, a in contributions[person]), account
            log = check_log(await read_topics(settings, ["bank"]))
            transferred = Counter(e.data.contribution_id for e in log.events("MonthlyTransfer"))  # type: ignore[attr-defined]
            assert transferred == Counter(c for paid in contributions.values() for c, _ in paid)
            # A contribution applied before its person's card (another topic, so either order)
            # was held, once.
            held_events = Counter(e.data.contribution_id for e in log.events("ContributionHeld"))  # type: ignore[attr-defined]
            assert set(held_events.values()) <= {1} and set(held_events) <= set(transferred)
            assert sorted(e.partitionkey for e in log.events("AccountOpened")) == sorted(persons)
            assert await read_topics(settings, ["identity", "cards", "clock"], dlq=True) == []
            print(f"killed during {state}; republished {log.republished}")


async def _at_least(n: int, wanted: int) -> bool:
    return n >= wanted
