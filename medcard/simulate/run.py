"""One simulation run: servers, a fresh namespace, the four services as processes, the
months, then the verified report; or the months and the report on services that are
already running, given by URL (``running.py``)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
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
from .driver import BUSINESS_SERVICES, CONCURRENCY, Driver, Holder, seeded_start
from .faults import FaultInjector, Servers, plan_faults
from .plan import Planner, Rates
from .population import build_population
from .progress import (Checkpoint, DayJournal, NothingToResume, ProgressFiles, Usage, combined_usage, holder_fields,
                       holder_state)
from .running import (
    CannotDrive,
    RunningStack,
    RunScope,
    business_date,
    exemption_headers,
    new_run_tag,
    open_ecosystem,
    refusals,
    stack_settings,
)
from .series import Series


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
    concurrency: int = CONCURRENCY
    """Persons acting at once (each one's actions in order)."""
    progress_dir: Path | None = None
    """Where the run keeps its progress (see progress.py); None: nowhere (not resumable)."""
    resume: bool = False
    """Go on with the run whose progress is in ``progress_dir`` (its business options are used)."""
    service_env: dict[str, str] = field(default_factory=dict)
    """Settings of the services for this run (``MEDCARD_*``: a policy ``medcard compare`` weighs)."""
    stack: RunningStack | None = None
    """Drive these running services instead of starting a fleet (``--identity-url`` ...):
    ``kafka_bootstrap`` is then their broker (default: the settings'), and the fleet's own
    options (``mongo_url``, ``port_base``, ``keep``, ``state_dir``) do not apply."""


@dataclass(frozen=True)
class Baseline:
    """Where a running stack stood when a run against it began: its business date, each
    topic's end, the bank's ledger totals; and the run's tag (see ``running.py``)."""

    tag: str
    start: date
    offsets: verify.Offsets
    totals: dict[str, int]


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


def _business_options(options: Options) -> dict[str, Any]:
    return {"persons": options.persons, "months": options.months, "seed": options.seed,
            "rates": dataclasses.asdict(options.rates), "holidays": options.holidays,
            "fast_hashing": options.fast_hashing, "faults": options.faults,
            "service_env": dict(options.service_env)}


def _resumed_options(options: Options, saved: dict[str, Any]) -> Options:
    """The options of the run being resumed: its business options are the saved ones."""
    return dataclasses.replace(options, persons=saved["persons"], months=saved["months"], seed=saved["seed"],
                               rates=Rates(**saved["rates"]), holidays=saved["holidays"],
                               fast_hashing=saved["fast_hashing"], faults=saved["faults"],
                               service_env=saved.get("service_env", {}))


def cpu_seconds(pid: int | None) -> float | None:
    """CPU time (user + system) the process has used so far, in seconds (this run's part of
    it for a service started by this run)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)


async def simulate(options: Options, progress: Callable[[str, int], None],
                   stopping: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """One run, or the rest of one (``options.resume``: from ``options.progress_dir``).

    ``stopping()`` is asked after each business day: true ends the run there, resumable
    (``Stopped`` is raised once the services are down)."""
    if options.stack is not None:
        return await _simulate_on_stack(options, options.stack, progress, stopping)
    started = time.perf_counter()
    files = ProgressFiles(options.progress_dir) if options.progress_dir else None
    checkpoint: Checkpoint | None = None
    ledger_ids: dict[str, set[str]] = {}
    if options.resume:
        if files is None:
            raise NothingToResume("no progress folder given: nothing to resume")
        checkpoint, ledger_ids = files.load()
        options = _resumed_options(options, checkpoint.options)
    kafka, mongo, servers = await asyncio.to_thread(_infrastructure, options)
    keys: dict[str, Any]
    if checkpoint is not None:
        namespace, secret = checkpoint.namespace, checkpoint.secrets
        operator_password, keys = secret["operator_password"], {k: secret[k] for k in SECRET_SETTINGS}
    else:
        namespace = f"sim{options.seed}x{secrets.token_hex(3)}"
        operator_password = secrets.token_urlsafe(16)
        keys = {name: secrets.token_urlsafe(40) for name in SECRET_SETTINGS}
        secret = {**keys, "operator_password": operator_password, "staff_password": secrets.token_urlsafe(12)}
        if files is not None:
            files.start_anew()
    env = {
        "MEDCARD_ENVIRONMENT": "development",
        "MEDCARD_NAMESPACE": namespace,
        **{f"MEDCARD_{name.upper()}": value for name, value in keys.items()},
        "MEDCARD_IDENTITY_BOOTSTRAP_OPERATOR_PASSWORD": operator_password,
        "MEDCARD_HOLIDAYS": options.holidays,
        "MEDCARD_LOG_LEVEL": options.log_level,
        **SIMULATION_RATES,
        **options.service_env,
    }
    if options.fast_hashing:
        env |= {"MEDCARD_ARGON2_MEMORY_KIB": "1024", "MEDCARD_ARGON2_TIME_COST": "1"}
    policy: dict[str, Any] = {k.removeprefix("MEDCARD_").lower(): v for k, v in options.service_env.items()}
    settings = Settings(environment="development", namespace=namespace, kafka_bootstrap=kafka, mongo_url=mongo,
                        **keys, **policy)
    await ensure_topics(settings)
    ports = {name: options.port_base + i for i, name in enumerate(("identity", "cards", "bank", "notifications"), 1)}
    fleet = ServiceFleet(options.state_dir / "sim", kafka_bootstrap=kafka, mongo_url=mongo, ports=ports,
                         extra_env=env)
    await asyncio.to_thread(fleet.down)
    await asyncio.to_thread(fleet.up)
    # The simulator stands for many clients: like a run against running services, it passes
    # the rate limits with the installation's proof (the limits keep their counters for others).
    eco = Ecosystem(fleet.urls(), operator_password, typed=options.typed, headers=lambda: exemption_headers(settings))
    await eco.open()
    try:
        injector = None
        if options.faults:
            assert servers is not None
            injector = FaultInjector(plan_faults(options.seed, options.faults, options.months * 28), fleet, servers)
        def usage() -> Usage:
            """This run's processes: peak memory and CPU so far (the services it started, itself)."""
            return ({p.name: peak_memory_mb(p.pid()) for p in fleet.processes},
                    {**{p.name: cpu_seconds(p.pid()) for p in fleet.processes},
                     "simulator": round(time.process_time(), 2)})

        run = _Run(options, settings, eco, progress, injector, files, secret, started, stopping, usage=usage)
        report = await run.drive(checkpoint, ledger_ids)
        if injector is not None:
            report["faults"] = injector.report(all(report["invariants"].values()))
        report["peak_memory_mb"], report["cpu_seconds"] = run.usage_so_far()
    finally:
        await eco.close()
        if not options.keep:
            await asyncio.to_thread(fleet.down)
    wall = time.perf_counter() - started + (checkpoint.elapsed_seconds if checkpoint else 0.0)
    return _finished(report, wall, namespace, options.fast_hashing, resumed=checkpoint is not None)


def _finished(report: dict[str, Any], wall: float, namespace: str, fast_hashing: bool, *,
              resumed: bool) -> dict[str, Any]:
    report["wall_seconds"] = round(wall, 2)
    report["events_per_second"] = round(report["events_published"] / report["wall_seconds"], 1)
    report["namespace"] = namespace
    report["fast_hashing"] = fast_hashing
    report["resumed"] = resumed
    return report


async def _simulate_on_stack(options: Options, stack: RunningStack, progress: Callable[[str, int], None],
                             stopping: Callable[[], bool]) -> dict[str, Any]:
    """One run on services that are already running: from their business date, with a run
    tag of its own, judged on its own events (see ``running.py``). Not resumable: nothing
    is kept in ``progress_dir``, and a stop (``stopping()``) ends the run where it is."""
    if refused := refusals(options):
        raise CannotDrive("; ".join(refused))
    started = time.perf_counter()
    settings, operator_password = stack_settings(stack, options.kafka_bootstrap)
    if options.holidays and parse_holidays(options.holidays) != parse_holidays(settings.holidays):
        raise CannotDrive("--holidays differs from the running services' MEDCARD_HOLIDAYS: the run's calendar is "
                         "theirs (set MEDCARD_HOLIDAYS here as it is set where they run)")
    options = dataclasses.replace(options, holidays=settings.holidays, progress_dir=None)
    eco = await open_ecosystem(stack, settings, operator_password, options.typed)
    try:
        start = await business_date(eco)
        baseline = Baseline(new_run_tag(), start, await verify.end_offsets(settings),
                            await verify.ledger_totals(eco))
        run = _Run(options, settings, eco, progress, None, None, {"staff_password": secrets.token_urlsafe(12)},
                   started, stopping, baseline=baseline)
        report = await run.drive(None, {})
    finally:
        await eco.close()
    report["cpu_seconds"] = {"simulator": round(time.process_time(), 2)}
    report["stack"] = {"urls": dict(stack.urls), "run_tag": baseline.tag}
    return _finished(report, time.perf_counter() - started, settings.namespace, False, resumed=False)


@dataclass
class _Run:
    options: Options
    settings: Settings
    eco: Ecosystem
    progress: Callable[[str, int], None]
    faults: FaultInjector | None
    files: ProgressFiles | None
    secret: dict[str, str]
    started: float
    stopping: Callable[[], bool]
    elapsed_before: float = 0.0
    usage: Callable[[], Usage] | None = None
    """This run's processes' usage so far (peak memory, CPU): a resumed run's report and each
    checkpoint combine it with the usage of the runs before (``usage_before``)."""
    usage_before: Usage = field(default_factory=lambda: ({}, {}))
    baseline: Baseline | None = None
    """A run on running services: where they stood (its start date and tag come from it)."""

    async def drive(self, resumed: Checkpoint | None, ledger_ids: dict[str, set[str]]) -> dict[str, Any]:
        options, eco = self.options, self.eco
        population = build_population(options.seed, options.persons,
                                      tag=self.baseline.tag if self.baseline else "")
        calendar = BusinessCalendar(extra_holidays=parse_holidays(options.holidays))
        start = self.baseline.start if self.baseline else seeded_start(options.seed)
        driver = Driver(eco, population, options.rates, calendar, self.settings, start, self.progress,
                        faults=self.faults, concurrency=options.concurrency,
                        staff_password=self.secret["staff_password"])
        planner = Planner(population, options.rates, calendar)
        if self.files is not None:
            driver.journal = DayJournal(self.files.day)
        phase = time.perf_counter()
        if resumed is None:
            await driver.set_up()
            driver.timings["set_up"] += time.perf_counter() - phase
            phase = time.perf_counter()
            # The opening month: employers pay, the month ends, the first transfers land.
            await driver._each([u.key for u in population.units],
                               lambda unit: driver._pay_contributions(unit, driver.today), None)
            # Paid during the month, received before it ends: a contribution the bank learns of
            # only after the month end waits for the next one (the outcome must not hang on
            # which of identity's topics the bank reads first).
            await driver.drain(services=BUSINESS_SERVICES)
            first = _first_of_next_month(driver.today)
            await eco.call("identity", "POST", "/v1/clock/advance", who="operator", json={"to": first.isoformat()})
            driver.today = driver.first_day = first
            await driver.drain(services=BUSINESS_SERVICES)
            driver.lives_at_month_start = planner.lives_state()
            driver.timings["opening_month"] += time.perf_counter() - phase
            acted = False
            await self._save(driver, planner, acted=False)
        else:
            self.elapsed_before = resumed.elapsed_seconds
            self.usage_before = (dict(resumed.peak_memory_mb), dict(resumed.cpu_seconds))
            await self._restore(driver, planner, resumed, ledger_ids)
            acted = resumed.acted
            driver.timings["resume"] += time.perf_counter() - phase
        end = _months_after(driver.first_day, options.months)
        try:
            await driver.run_days(planner, end, acted=acted, stopping=self.stopping,
                                  checkpoint=lambda: self._save(driver, planner, acted=True))
            phase = time.perf_counter()
            await driver.drain()
            driver.timings["final_drain"] += time.perf_counter() - phase
        finally:
            await driver.close()
            if driver.journal is not None:
                driver.journal.close()
        phase = time.perf_counter()
        report = await _verify(options, self.settings, eco, driver, start, self.baseline)
        driver.timings["verify"] += time.perf_counter() - phase
        report["timings"] = {k: int(v) if k == "drain_looks" else round(v, 2)
                             for k, v in sorted(driver.timings.items())}
        return report

    async def _save(self, driver: Driver, planner: Planner, *, acted: bool) -> None:
        if self.files is None:
            driver.ledger.take_new()
            return
        persons = self.options.persons
        checkpoint = Checkpoint(
            options=_business_options(self.options), namespace=self.settings.namespace, secrets=self.secret,
            start=driver.start, first_day=driver.first_day, today=driver.today, acted=acted,
            day_number=driver.day_number, units=dict(driver._units),
            holders=[holder_state(driver.holders[i], driver.population.persons[i].pin) for i in range(persons)],
            lives_at_month_start=driver.lives_at_month_start, lives=planner.lives_state(),
            answers=dict(driver.ledger.answers), loss_answers=dict(driver.ledger.loss_answers),
            ledger_bytes=self._ledger_bytes,
            elapsed_seconds=self.elapsed_before + time.perf_counter() - self.started,
            faults={"injected": dict(self.faults.injected), "log": self.faults.log} if self.faults else {})
        checkpoint.peak_memory_mb, checkpoint.cpu_seconds = self.usage_so_far()
        new = driver.ledger.take_new()
        await asyncio.to_thread(self.files.save, checkpoint, new)
        self._ledger_bytes = checkpoint.ledger_bytes

    _ledger_bytes: int = 0

    def usage_so_far(self) -> Usage:
        """The processes' peak memory and CPU over the whole run (the runs before this one, if
        it was resumed, and this one until now)."""
        return combined_usage(self.usage_before, self.usage() if self.usage else ({}, {}))

    async def _restore(self, driver: Driver, planner: Planner, saved: Checkpoint,
                       ledger_ids: dict[str, set[str]]) -> None:
        """The driver and the planner as they were at the checkpoint; staff logged in again."""
        await driver.eco.login_operator()
        await driver.log_staff_in()
        driver.first_day, driver.today, driver.day_number = saved.first_day, saved.today, saved.day_number
        for what, done in (("register", len(saved.holders)), ("cards", len(saved.holders)),
                           ("days", saved.day_number + saved.acted)):
            self.progress(what, done)
        driver._units = dict(saved.units)
        for i, state in enumerate(saved.holders):
            p = driver.population.persons[i]
            driver.holders[i] = Holder(id_number=p.id_number, **holder_fields(state, p.pin))
        driver.lives_at_month_start = saved.lives_at_month_start
        planner.set_lives(saved.lives)
        for kind, ids in ledger_ids.items():
            getattr(driver.ledger, kind).update(ids)
        driver.ledger.answers.update(saved.answers)
        driver.ledger.loss_answers.update(saved.loss_answers)
        self._ledger_bytes = saved.ledger_bytes
        if self.faults is not None and saved.faults:
            self.faults.injected.update(saved.faults["injected"])
            self.faults.log.extend(saved.faults["log"])
        # Whatever was in flight when the earlier run stopped is applied before anything is done.
        await driver.drain(services=BUSINESS_SERVICES)


def _months_after(first: date, months: int) -> date:
    total = first.year * 12 + first.month - 1 + months
    return date(total // 12, total % 12 + 1, 1)


async def _verify(options: Options, settings: Settings, eco: Ecosystem, driver: Driver, start: date,
                  baseline: Baseline | None = None) -> dict[str, Any]:
    """The report. On running services (``baseline``) only what the run did counts: the
    topics from where they ended when it began, its own aggregates' events, and what the
    bank's ledger moved since."""
    series = Series(driver.calendar, start)
    tally = await verify.read_stream(settings, driver.ledger, series, since=baseline.offsets if baseline else None,
                                     ours=RunScope.of(driver) if baseline else None)
    figures = verify.count(tally)
    people, sampled = verify.sample_people(driver.holders, options.seed)
    cards = await verify.cards_projection(eco, people)
    outboxes = [await eco.call(s, "GET", "/ops/outbox", who="operator") for s in eco.urls]
    lost_checks = verify.nothing_lost(tally, sum(o["pending"] for o in outboxes))
    accounts = await verify.bank_accounts(eco, people)
    disagreements = await verify.projection_disagreements(eco, cards, accounts)
    invariants = {
        "money_conserved": await verify.money_conserved(eco, tally, people, accounts,
                                                        before=baseline.totals if baseline else None),
        "no_purchase_after_loss": verify.no_purchase_after_loss(tally),
        "one_active_card_per_person": verify.one_active_card_per_person(cards),
        "projections_agree": not disagreements,
        "nothing_lost": all(lost_checks.values()) and figures["dead_letters"] == 0,
    }
    return {
        "seed": options.seed, "persons": options.persons, "months": options.months,
        "start_date": start.isoformat(), "end_date": driver.today.isoformat(),
        **figures,
        "loss_to_block": {**verify.loss_window(tally), "answered": dict(driver.ledger.loss_answers)},
        "nothing_lost_detail": lost_checks,
        "projections_checked": {"persons": len(people), "sampled": sampled, "disagreements": disagreements},
        "invariants": invariants,
        "cardless": {"person_days": series.person_days_without_a_card(driver.today),
                     "purchases_forgone": driver.ledger.answers.get("purchase_forgone", 0)},
        "pin": {"max_failures": settings.pin_max_failures,
                "thief_purchases_approved": driver.ledger.answers.get("thief_approved", 0),
                "thief_purchases_stopped": driver.ledger.answers.get("thief_stopped", 0),
                "holders_locked_out": driver.ledger.answers.get("holder_locked_out", 0),
                "holders_remembered": driver.ledger.answers.get("holder_remembered", 0)},
        "policy": dict(options.service_env),
        "series": series.result(verify.loss_latencies(tally)),
    }
