"""Seeded fault injection for the simulation (``simulate --faults N``): a soak test.

Faults strike at the moment a day's work is in flight: the day's commands have all been
answered, so their events sit in outboxes, relays and consumers, and the clock has just
been told to advance (a month end's transfers, replacements becoming ready). Three kinds:

- ``kill_service``: one service process is SIGKILLed, as a crash would, and started again;
- ``kafka_outage``: the broker is stopped before the clock advance (that command is then
  accepted while Kafka is down, and answered after identity's wait for the services, naming
  them all behind) and started again a moment later;
- ``database_outage``: the MongoDB-wire server is stopped for a moment and started again.

No HTTP request is in flight when a service dies or the database stops, so the driver never
has to guess whether a command was applied; what is at stake is the events in flight. The
run then drains and checks every invariant as usual: a fault survived is one after which
nothing was lost and nothing applied twice. With the same seed, the business outcome equals
that of a run without faults.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from medcard.services import SERVICES, ServiceFleet

KINDS = ("kill_service", "kafka_outage", "database_outage")


class Servers(Protocol):
    """Blocking controls of the broker and the database (a medcard.stack.LocalStack is one)."""

    def stop_kafka(self) -> None: ...
    def start_kafka(self) -> None: ...
    def stop_mongo(self) -> None: ...
    def start_mongo(self) -> None: ...


@dataclass(frozen=True)
class Fault:
    day: int
    """The simulated day (0 = the first day of the first simulated month) it strikes after."""
    kind: str
    target: str = ""
    delay: float = 0.0
    """Seconds between the clock advance and a service's kill (events are mid-flight)."""


def plan_faults(seed: int, count: int, days: int) -> dict[int, Fault]:
    """``count`` faults on distinct days, every kind before any repeats, reproducible from the seed."""
    if count <= 0:
        return {}
    rng = random.Random(f"faults:{seed}")
    chosen = sorted(rng.sample(range(days), min(count, days)))
    kinds = [KINDS[i % len(KINDS)] for i in range(len(chosen))]
    rng.shuffle(kinds)
    faults = {}
    for day, kind in zip(chosen, kinds, strict=True):
        target = rng.choice(SERVICES) if kind == "kill_service" else ""
        faults[day] = Fault(day, kind, target, round(rng.uniform(0.0, 0.3), 3))
    return faults


@dataclass
class FaultInjector:
    plan: dict[int, Fault]
    fleet: ServiceFleet
    servers: Servers
    injected: Counter[str] = field(default_factory=Counter)
    log: list[dict[str, Any]] = field(default_factory=list)

    async def around_advance(self, day: int, advance: Any) -> None:
        """Run the clock advance (an awaitable factory) with the day's fault, if any, around it."""
        fault = self.plan.get(day)
        if fault is None:
            await advance()
            return
        started = time.perf_counter()
        if fault.kind == "kafka_outage":
            await asyncio.to_thread(self.servers.stop_kafka)
            try:
                await advance()  # accepted by identity while the broker is down
                await asyncio.sleep(1.0)
            finally:  # the broker comes back even when the advance failed: nothing after it runs without one
                await asyncio.to_thread(self.servers.start_kafka)
        else:
            await advance()
            if fault.kind == "kill_service":
                await asyncio.sleep(fault.delay)
                process = self.fleet.get(fault.target)
                await asyncio.to_thread(process.kill)
                await asyncio.to_thread(process.start)
            else:
                await asyncio.to_thread(self.servers.stop_mongo)
                await asyncio.sleep(1.0)
                await asyncio.to_thread(self.servers.start_mongo)
        for process in self.fleet.processes:  # every service recovers by itself
            await asyncio.to_thread(process.wait_ready, 180.0)
        self.injected[fault.kind] += 1
        self.log.append({"day": day, "kind": fault.kind, "target": fault.target or None,
                         "seconds": round(time.perf_counter() - started, 2)})

    def report(self, survived: bool) -> dict[str, Any]:
        total = sum(self.injected.values())
        return {"planned": len(self.plan), "injected": total, "survived": total if survived else 0,
                "by_kind": dict(self.injected), "log": self.log}
