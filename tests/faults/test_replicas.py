"""Replicas of the bank (processes in one consumer group) while identity's and cards' events
stream in: a second one joins, and the first is killed with SIGKILL while the group is
rebalancing. The survivor takes every partition; no event is applied twice, none is lost."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from shared.settings import Settings
from shared.topics import TOPICS
from tests.faults.support import (
    as_role,
    background,
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

REBALANCING = ("PreparingRebalance", "CompletingRebalance")
JOINERS = (8216, 8217, 8218)


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


async def rebalance_seen(settings: Settings, group: str, joiner: Any) -> str:
    """Poll the group while a replica joins: the first rebalancing state seen, or the state
    once the joiner is in and the group is stable again (the rebalance was missed)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        coordinator = await admin.find_coordinator(group)
        deadline = time.monotonic() + 120
        probed = 0.0
        ready_at: float | None = None
        while time.monotonic() < deadline:
            [response] = await admin.describe_consumer_groups([group], group_coordinator_id=coordinator)
            [described] = response.to_object()["groups"]
            state = str(described["state"])
            if state in REBALANCING:
                return state
            if ready_at is None and time.monotonic() - probed > 0.5:  # now and then: is it up yet?
                probed = time.monotonic()
                if await asyncio.to_thread(joiner.probe, 1.0):
                    ready_at = time.monotonic()
            if ready_at is not None and time.monotonic() - ready_at > 10:
                return state
            await asyncio.sleep(0.005)
        return "timed out"
    finally:
        await admin.close()


async def test_a_replica_killed_during_a_rebalance_leaves_its_partitions_to_the_survivor(
    settings: Settings,
) -> None:
    group = settings.group_id("bank")
    every_partition = sorted((TOPICS[s].name(settings.namespace), p) for s in ("identity", "cards")
                             for p in range(TOPICS[s].partitions))
    with processes(settings) as procs:
        first = await procs.run("bank", 8215, replica="a")
        async with EventSource(settings) as src:
            persons: list[str] = []
            cards: dict[str, str] = {}
            contributions: dict[str, list[tuple[str, int]]] = {}

            async def contribute(person: str, amount: int) -> None:
                event = await src.contribution(person, "2026-01", amount)
                contributions.setdefault(person, []).append((event.data.contribution_id, amount))  # type: ignore[attr-defined]

            stop = asyncio.Event()

            async def stream() -> None:
                """Until told to stop: each new person registered, then (every other one) paid
                for before the card exists, carded, paid for again."""
                for i in itertools.count():
                    if stop.is_set():
                        return
                    person, _ = await src.person()
                    persons.append(person)
                    if i % 2:
                        await contribute(person, 5_000 + i)
                    cards[person] = await src.card(person)
                    await contribute(person, 10_000 + i)
                    await asyncio.sleep(0.2)

            async def alone() -> bool:
                state, members = await describe(settings, group)
                return state == "Stable" and len(members) == 1

            async with background(stream()) as [feeding]:
                await eventually(lambda: _at_least(len(persons), 10), timeout=60)
                await eventually(alone, timeout=60)

                # Another replica joins: the group rebalances; the first dies in the middle of it.
                # (A rebalance can be over in a fraction of a second: if the polling missed it,
                # one more replica joins, up to three.)
                survivors: list[Any] = []
                state = ""
                for port in JOINERS:
                    joiner = procs.process("bank", port, replica=str(port))
                    survivors.append(joiner)
                    await asyncio.to_thread(joiner.start)
                    state = await rebalance_seen(settings, group, joiner)
                    if state in REBALANCING:
                        break
                assert state in REBALANCING, f"no rebalance seen while {len(survivors)} replicas joined"
                await procs.kill(first)
                at_kill = len(persons)
                for survivor in survivors:
                    await asyncio.to_thread(survivor.wait_ready, 120)
                await eventually(lambda: _at_least(len(persons), at_kill + 10), timeout=60)
                stop.set()
                await feeding

            # The survivors own every partition, each one once, and catch up.
            async def taken_over() -> bool:
                state, members = await describe(settings, group)
                owned = sorted(tp for member in members for tp in member)
                return state == "Stable" and len(members) == len(survivors) and owned == every_partition
            await eventually(taken_over, timeout=120, interval=0.5)
            await eventually(lambda: caught_up(settings, group, ["identity", "cards"]), timeout=120, interval=0.5)
            await src.month_end("2026-01")
            async with http(survivors[0].url) as bank:
                await eventually(lambda: balances_settled(bank, settings, persons), timeout=120, interval=0.5)

                # None lost, none applied twice: each account holds its card and exactly the
                # contributions paid, and is credited each of them once.
                teller = as_role(settings, "teller")
                for person in persons:
                    account = (await bank.get(f"/v1/accounts/{person}", headers=teller)).json()
                    assert [c["card_number"] for c in account["cards"]] == [cards[person]], account
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
