"""One simulation run: servers, a fresh namespace, the four services as processes, the
months, then the verified report."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from medcard.services import ServiceFleet
from medcard.stack.local import LocalStack
from shared.calendar import BusinessCalendar, parse_holidays
from shared.kafka import ensure_topics
from shared.settings import SECRET_SETTINGS, Settings

from . import verify
from .client import Ecosystem
from .driver import BUSINESS_SERVICES, Driver, seeded_start
from .faults import FaultInjector, Servers, plan_faults
from .plan import Planner, Rates
from .population import build_population


SIMULATION_RATES = {
    "MEDCARD_RATE_LIMIT_PER_CLIENT": "1000000/minute", "MEDCARD_RATE_LIMIT_PER_ID_NUMBER": "1000/hour",
    "MEDCARD_RATE_LIMIT_PER_ACCOUNT_NUMBER": "10000/hour", "MEDCARD_RATE_LIMIT_PER_VOUCHER": "1000/hour",
}
"""The simulation plays every cardholder, clerk and terminal from one address, days apart
in business time but seconds apart in real time: the per-client and per-subject rate
limits are raised for its own fleet (the services' defaults are what a probe meets)."""


@dataclass
class Options:
    persons: int = 100
    months: int = 3
    seed: int = 7
    rates: Rates = field(default_factory=Rates)
    kafka_bootstrap: str | None = None
    mongo_url: str | None = None
    port_base: int = 8110
    holidays: str = ""
    fast_hashing: bool = False
    """Cheaper argon2 in the services (for very large populations); reported."""
    keep: bool = False
    state_dir: Path = Path(".state")
    faults: int = 0
    """Faults to inject at seeded moments (see faults.py); needs ``servers`` or the local stack."""
    servers: Servers | None = None
    log_level: str = "WARNING"
    """The services' log level (their logs: ``<state_dir>/sim/services/logs``)."""
    typed: set[str] | None = None
    """When a set: receives every password, PIN and ID number the simulation sent (leak scans)."""


def _infrastructure(options: Options) -> tuple[str, str, Servers | None]:
    if options.kafka_bootstrap and options.mongo_url:
        if options.faults and options.servers is None:
            raise ValueError("fault injection needs the local stack (no --kafka/--mongo URLs): "
                             "it stops and starts the broker and the database")
        return options.kafka_bootstrap, options.mongo_url, options.servers
    stack = LocalStack()
    stack.up()
    return stack.kafka_bootstrap, stack.mongo_url, options.servers or stack


def _first_of_next_month(d: date) -> date:
    return (d.replace(day=28) + timedelta(days=4)).replace(day=1)


def peak_memory_mb(pid: int | None) -> float | None:
    """The process's peak resident set (VmHWM), in MiB."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


async def simulate(options: Options, progress: Callable[[str, int], None]) -> dict[str, Any]:
    started = time.perf_counter()
    kafka, mongo, servers = await asyncio.to_thread(_infrastructure, options)
    namespace = f"sim{options.seed}x{secrets.token_hex(3)}"
    operator_password = secrets.token_urlsafe(16)
    keys = {name: secrets.token_urlsafe(40) for name in SECRET_SETTINGS}
    env = {
        "MEDCARD_ENVIRONMENT": "development",
        "MEDCARD_NAMESPACE": namespace,
        **{f"MEDCARD_{name.upper()}": value for name, value in keys.items()},
        "MEDCARD_IDENTITY_BOOTSTRAP_OPERATOR_PASSWORD": operator_password,
        "MEDCARD_HOLIDAYS": options.holidays,
        "MEDCARD_LOG_LEVEL": options.log_level,
        **SIMULATION_RATES,
    }
    if options.fast_hashing:
        env |= {"MEDCARD_ARGON2_MEMORY_KIB": "1024", "MEDCARD_ARGON2_TIME_COST": "1"}
    settings = Settings(environment="development", namespace=namespace, kafka_bootstrap=kafka, mongo_url=mongo,
                        **keys)
    await ensure_topics(settings)
    ports = {name: options.port_base + i for i, name in enumerate(("identity", "cards", "bank", "notifications"), 1)}
    fleet = ServiceFleet(options.state_dir / "sim", kafka_bootstrap=kafka, mongo_url=mongo, ports=ports,
                         extra_env=env)
    await asyncio.to_thread(fleet.down)
    await asyncio.to_thread(fleet.up)
    eco = Ecosystem(fleet.urls(), operator_password, typed=options.typed)
    await eco.open()
    try:
        injector = None
        if options.faults:
            assert servers is not None
            injector = FaultInjector(plan_faults(options.seed, options.faults, options.months * 28), fleet, servers)
        report = await _drive(options, settings, eco, progress, injector)
        if injector is not None:
            report["faults"] = injector.report(all(report["invariants"].values()))
        report["peak_memory_mb"] = {p.name: peak_memory_mb(p.pid()) for p in fleet.processes}
    finally:
        await eco.close()
        if not options.keep:
            await asyncio.to_thread(fleet.down)
    report["wall_seconds"] = round(time.perf_counter() - started, 2)
    report["events_per_second"] = round(report["events_published"] / report["wall_seconds"], 1)
    report["namespace"] = namespace
    report["fast_hashing"] = options.fast_hashing
    return report


async def _drive(options: Options, settings: Settings, eco: Ecosystem,
                 progress: Callable[[str, int], None], faults: FaultInjector | None = None) -> dict[str, Any]:
    population = build_population(options.seed, options.persons)
    calendar = BusinessCalendar(extra_holidays=parse_holidays(options.holidays))
    start = seeded_start(options.seed)
    driver = Driver(eco, population, options.rates, calendar, settings, start, progress, faults=faults)
    await driver.set_up()
    # The opening month: employers pay, the month ends, the first transfers land.
    for unit in population.units:
        await driver._pay_contributions(unit.key, driver.today)
    first = _first_of_next_month(driver.today)
    await eco.call("identity", "POST", "/v1/clock/advance", who="operator", json={"to": first.isoformat()})
    driver.today = first
    await driver.drain(services=BUSINESS_SERVICES)
    planner = Planner(population, options.rates, calendar)
    try:
        for month in range(options.months):
            await driver.run_month(month, planner)
        await driver.drain()
    finally:
        await driver.close()

    stream = await verify.read_stream(settings)
    figures = verify.count(stream)
    people, sampled = verify.sample_people(driver.holders, options.seed)
    cards = await verify.cards_projection(eco, people)
    outboxes = [await eco.call(s, "GET", "/ops/outbox", who="operator") for s in eco.urls]
    lost_checks = verify.nothing_lost(stream, driver.ledger, sum(o["pending"] for o in outboxes))
    disagreements = await verify.projection_disagreements(eco, cards)
    invariants = {
        "money_conserved": await verify.money_conserved(eco, stream, people),
        "no_purchase_after_loss": verify.no_purchase_after_loss(stream),
        "one_active_card_per_person": verify.one_active_card_per_person(cards),
        "projections_agree": not disagreements,
        "nothing_lost": all(lost_checks.values()) and figures["dead_letters"] == 0,
    }
    return {
        "seed": options.seed, "persons": options.persons, "months": options.months,
        "start_date": start.isoformat(), "end_date": driver.today.isoformat(),
        **figures,
        "loss_to_block": {**verify.loss_window(stream), "answered": dict(driver.ledger.loss_answers)},
        "nothing_lost_detail": lost_checks,
        "projections_checked": {"persons": len(people), "sampled": sampled, "disagreements": disagreements},
        "invariants": invariants,
    }
