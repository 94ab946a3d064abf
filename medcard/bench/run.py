"""One benchmark run: the servers, a fresh namespace per group of rows, the services as
processes, each figure and its baseline measured in the same run, the report."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medcard.simulate.run import peak_memory_mb
from medcard.stack.local import LocalStack
from shared.kafka import ensure_topics
from shared.topics import topic_for_service

from . import accounts, cardholders, loss, pos, relay
from .common import (
    SERVICE_ORDER,
    BaselineProcess,
    KafkaProbe,
    Namespace,
    Row,
    db_commands,
    db_delta,
    drain,
    fleet,
    machine,
    meter,
    open_ecosystem,
    ports_from,
    start,
    stop,
)

ROWS = ("loss", "pos", "relay", "projection", "month-end", "simulation")
Say = Callable[[str], None]


@dataclass
class Options:
    size: int = 10_000
    """Committed commands for the relay row; accounts for projection and month end unless ``sizes``."""
    sizes: list[int] = field(default_factory=list)
    """Accounts for the projection and month-end rows (the growth table); default [size]."""
    reports: int = 1000
    pos_cards: int = 200
    duration: float = 20.0
    concurrency: int = 16
    loss_parallel: int = 1
    rows: tuple[str, ...] = ROWS[:-1]
    kafka_bootstrap: str | None = None
    mongo_url: str | None = None
    port_base: int = 8400
    simulation_persons: int = 0
    simulation_months: int = 1
    state_dir: Path = Path(".state")
    profile_dir: Path | None = None
    """Record each measured service with py-spy (raw collapsed stacks) into this folder."""


def _infrastructure(options: Options) -> tuple[str, str]:
    if options.kafka_bootstrap and options.mongo_url:
        return options.kafka_bootstrap, options.mongo_url
    stack = LocalStack()
    stack.up()
    return stack.kafka_bootstrap, stack.mongo_url


@asynccontextmanager
async def profiled(options: Options, name: str, pid: int | None, say: Say) -> AsyncIterator[None]:
    """py-spy records ``pid`` while the block runs (when asked, and py-spy is installed)."""
    spy = shutil.which("py-spy")
    if options.profile_dir is None or pid is None or spy is None:
        yield
        return
    options.profile_dir.mkdir(parents=True, exist_ok=True)
    out = options.profile_dir / f"{name}.txt"
    proc = subprocess.Popen([spy,  # noqa: ASYNC220 - starts and returns at once; py-spy runs beside "record", "--pid", str(pid), "--format", "raw", "--nonblocking",
                             "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
        say(f"profile of {name} written to {out}")


def _where(m: Any, ops: int, **extra: Any) -> dict[str, Any]:
    """Where the time went over a measured phase: CPU ms per operation by process, how busy
    the machine was and how much of it other processes took, and any extra breakdown."""
    return {"cpu_ms": m.per(ops), "machine_cores_busy": m.result.get("machine_cores_busy"),
            "cores_used_by_others": m.result.get("cores_used_by_others"), **extra}


def _failed(key: str, figure: str, err: BaseException) -> Row:
    return Row(key, figure, None, "", None, "", "", False, detail={"error": f"{type(err).__name__}: {err}"})


async def bench(options: Options, say: Say = lambda _m: None,
                checkpoint: Callable[[dict[str, Any]], None] = lambda _r: None) -> dict[str, Any]:
    """Run the chosen rows; ``checkpoint`` gets the report so far after each group of rows
    (a long run stopped midway keeps what it measured)."""
    started = time.perf_counter()
    kafka, mongo = await asyncio.to_thread(_infrastructure, options)
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
        "infrastructure": {"kafka": kafka, "mongo": mongo},
        "rows": [],
        "services_peak_memory_mb": {},
        "namespaces": {},
    }
    rows: list[Row] = []

    def snapshot(final: bool = False) -> dict[str, Any]:
        out = {**report, "rows": [r.to_json() for r in rows], "complete": final}
        out["machine"] = {**report["machine"], "load_average_end": [round(x, 2) for x in os.getloadavg()]}
        out["wall_seconds"] = round(time.perf_counter() - started, 1)
        return out

    wanted = set(options.rows)
    if wanted & {"loss", "pos"}:
        rows += await _cardholder_rows(options, kafka, mongo, report, say)
        checkpoint(snapshot())
    if "relay" in wanted:
        rows += await _relay_rows(options, kafka, mongo, report, say)
        checkpoint(snapshot())
    if wanted & {"projection", "month-end"}:
        for n in options.sizes or [options.size]:
            rows += await _account_rows(options, n, kafka, mongo, report, say)
            checkpoint(snapshot())
    if "simulation" in wanted and options.simulation_persons > 0:
        rows.append(await _simulation_row(options, kafka, mongo, report, say))
    return snapshot(final=True)


# ---- loss-to-block and POS: the four services, cardholders made over HTTP ---------------

async def _cardholder_rows(options: Options, kafka: str, mongo: str, report: dict[str, Any], say: Say) -> list[Row]:
    wanted = set(options.rows)
    ns = Namespace.fresh("benchc", kafka, mongo)
    report["namespaces"]["cardholders"] = ns.name
    settings = ns.settings
    await ensure_topics(settings)
    ports = ports_from(options.port_base)
    f = fleet(ns, options.state_dir / "bench" / "cardholders", ports, SERVICE_ORDER)
    out: list[Row] = []
    say(f"starting the four services on namespace {ns.name}")
    await start(f)
    eco = await open_ecosystem(ns, f)
    try:
        async with KafkaProbe(settings) as probe:
            n_loss = options.reports if "loss" in wanted else 0
            n_pos = options.pos_cards if "pos" in wanted else 0
            say(f"set-up: {n_loss + n_pos} cardholders over HTTP (registered, card issued, PIN set)")
            t = time.perf_counter()
            world = await cardholders.set_up(eco, loss_cards=n_loss, pos_cards=n_pos)
            await drain(eco, probe)  # every contribution recorded before the month end credits it
            await cardholders.fund(world)
            await drain(eco, probe)
            say(f"set-up done in {time.perf_counter() - t:.0f} s")
            if "loss" in wanted:
                try:
                    samples = max(options.reports, 200)
                    say(f"loss-to-block: baseline, {samples} raw Kafka round trips")
                    with meter(ns, None) as m:
                        base = await loss.kafka_round_trips(settings, samples)
                    base_where = _where(m, samples)
                    say(f"loss-to-block: {options.reports} loss reports")
                    bank_url = f.get("bank").url
                    db0 = await db_commands(bank_url, ns.settings)
                    with meter(ns, f) as m:
                        measured = await loss.measure(world, settings, parallel=options.loss_parallel)
                    db1 = await db_commands(bank_url, ns.settings)
                    where = _where(m, options.reports, bank_db=db_delta(db0, db1, options.reports))
                    await drain(eco, probe)
                    events = await loss.events_view(settings, measured["results"])
                    out += loss.rows(measured, base, events, where={"per_report": where,
                                                                     "baseline_per_round_trip": base_where})
                except Exception as err:
                    out.append(_failed("loss_to_block_p99", "loss-to-block latency", err))
            if "pos" in wanted:
                try:
                    out += await _pos_rows(options, ns, f, eco, world, probe, say)
                except Exception as err:
                    out.append(_failed("pos_rps", "POS authorisation under load", err))
    finally:
        await eco.close()
        report["services_peak_memory_mb"]["cardholders"] = await stop(f)
    return out


async def _pos_rows(options: Options, ns: Namespace, f: Any, eco: Any, world: cardholders.Cardholders,
                    probe: KafkaProbe, say: Say) -> list[Row]:
    say(f"POS: warm-up, one swipe per card ({len(world.pos)} cards)")
    await pos.warm_up(world)
    await drain(eco, probe)
    bodies = [cardholders.pos_body(h) for h in world.pos]
    headers = eco.auth(cardholders.MERCHANT)
    say(f"POS: {options.concurrency} clients for {options.duration:.0f} s on the bank")
    bank = f.get("bank")
    db0 = await db_commands(bank.url, ns.settings)
    async with profiled(options, "pos-bank", bank.pid(), say):
        with meter(ns, f) as m:
            measured = await pos.load(bank.url, headers, bodies, concurrency=options.concurrency,
                                      duration=options.duration)
    db1 = await db_commands(bank.url, ns.settings)
    measured["per_request"] = _where(m, measured["ok"], bank_db=db_delta(db0, db1, measured["ok"]))
    await drain(eco, probe)
    base_proc = BaselineProcess(options.state_dir / "bench" / "baseline", "baseline", options.port_base + 5,
                                {"MEDCARD_NAMESPACE": ns.name, "MEDCARD_MONGO_URL": ns.mongo,
                                 "MEDCARD_KAFKA_BOOTSTRAP": ns.kafka})
    await asyncio.to_thread(base_proc.stop)
    await asyncio.to_thread(base_proc.start)
    try:
        await asyncio.to_thread(base_proc.wait_ready, 60)
        say("POS: the same load on the bare FastAPI + find_one baseline")
        async with profiled(options, "pos-baseline", base_proc.pid(), say):
            with meter(ns, None, {"baseline app": base_proc.pid()}) as m:
                base = await pos.load(base_proc.url, headers, bodies, concurrency=options.concurrency,
                                      duration=options.duration)
        base["per_request"] = _where(m, base["ok"])
        base["peak_memory_mb"] = peak_memory_mb(base_proc.pid())
    finally:
        await asyncio.to_thread(base_proc.stop)
    return pos.rows(measured, base, concurrency=options.concurrency, cards=len(bodies))


# ---- outbox relay: the bank alone, a backlog committed through its store -----------------

async def _relay_rows(options: Options, kafka: str, mongo: str, report: dict[str, Any], say: Say) -> list[Row]:
    n = options.size
    ns = Namespace.fresh("benchr", kafka, mongo)
    report["namespaces"]["relay"] = ns.name
    settings = ns.settings
    await ensure_topics(settings)
    f = fleet(ns, options.state_dir / "bench" / "relay", ports_from(options.port_base + 9), ["bank"])
    try:
        say(f"relay: committing {n:,} merchant registrations with the bank's store (bank not running)")
        records = await relay.commit_backlog(settings, n)
        topic = topic_for_service("bank", settings.namespace)
        async with KafkaProbe(settings) as probe:
            watcher = asyncio.create_task(relay.watch_published(probe, topic, n))
            say("relay: starting the bank; its relay publishes the backlog")
            await start(f)
            already = await probe.total(topic)
            async with profiled(options, "relay-bank", f.get("bank").pid(), say):
                with meter(ns, f) as m:
                    published = await watcher
            first = await relay.first_timestamp(settings, topic)
            cleared = await relay.pending_cleared(settings)
        measured = relay.result(n, first, published, cleared)
        measured["per_event"] = _where(m, n - already)
        measured["per_event"]["events_counted"] = n - already
        report["services_peak_memory_mb"]["relay"] = await stop(f)
        say("relay: baseline, raw idempotent produce of the same records")
        with meter(ns, None) as m:
            base = await relay.baseline(settings, records)
        base["per_event"] = _where(m, n)
        return relay.rows(n, measured, base)
    except Exception as err:
        return [_failed("relay_rate", "outbox relay", err)]
    finally:
        await stop(f)


# ---- projection and month end: identity + bank, a backlog produced to Kafka ---------------

async def _account_rows(options: Options, n: int, kafka: str, mongo: str, report: dict[str, Any],
                        say: Say) -> list[Row]:
    wanted = set(options.rows)
    ns = Namespace.fresh(f"bencha{n}x", kafka, mongo)
    report["namespaces"][f"accounts@{n}"] = ns.name
    settings = ns.settings
    await ensure_topics(settings)
    f = fleet(ns, options.state_dir / "bench" / "accounts", ports_from(options.port_base + 5), ["identity", "bank"])
    try:
        say(f"accounts@{n:,}: producing {2 * n:,} events (CardIssued, ContributionPaid) to Kafka")
        produced = await accounts.produce_backlog(settings, n)
        say(f"accounts@{n:,}: produced in {produced['seconds']} s; starting identity and bank")
        group = settings.group_id("bank")
        topics = [topic_for_service("identity", ns.name), topic_for_service("cards", ns.name)]
        async with KafkaProbe(settings) as probe:
            done = asyncio.Event()
            samples: list[tuple[float, int]] = []
            watcher = asyncio.create_task(accounts.watch_lag(probe, group, topics, done, samples))
            await start(f)
            lag_at_ready = await probe.lag(group, topics)  # what is left once the bank answers
            db0 = await db_commands(f.get("bank").url, ns.settings)
            async with profiled(options, f"projection-bank-{n}", f.get("bank").pid(), say):
                with meter(ns, f) as m:
                    await watcher
            projection_where = _where(m, lag_at_ready, bank_db=db_delta(
                db0, await db_commands(f.get("bank").url, ns.settings), lag_at_ready))
            projection_where["events_counted"] = lag_at_ready
            first_write = await accounts.first_event_time(settings, topic_for_service("bank", ns.name))
            projection = accounts.projection_result(n, first_write, samples)
            projection["backlog_produced"] = produced
            projection["per_event"] = projection_where
            say(f"accounts@{n:,}: bank applied {2 * n:,} events at {projection['rate']} events/s")
            eco = await open_ecosystem(ns, f)
            try:
                await drain(eco, probe)
                base_projection: dict[str, Any] = {"rate": None}
                if "projection" in wanted:
                    say(f"accounts@{n:,}: baseline, raw consume + bulk_write upserts")
                    with meter(ns, None) as m:
                        base_projection = await accounts.baseline_projection(settings, n)
                    base_projection["per_event"] = _where(m, base_projection["events"])
                transfer: dict[str, Any] | None = None
                base_transfer: dict[str, Any] | None = None
                if "month-end" in wanted:
                    await eco.call("identity", "POST", "/v1/clock/advance", who="operator",
                                   json={"start": "2026-01-30", "days": 1})
                    await drain(eco, probe)
                    say(f"accounts@{n:,}: month end over {n:,} accounts")
                    db0 = await db_commands(f.get("bank").url, ns.settings)
                    async with profiled(options, f"month-end-bank-{n}", f.get("bank").pid(), say):
                        with meter(ns, f) as m:
                            transfer = await accounts.month_end(eco, probe, settings, n)
                    transfer["per_account"] = _where(m, n, bank_db=db_delta(
                        db0, await db_commands(f.get("bank").url, ns.settings), n))
                    await drain(eco, probe)
                    say(f"accounts@{n:,}: baseline, raw bulk_write upserts of {n:,} documents")
                    with meter(ns, None) as m:
                        base_transfer = await accounts.baseline_month_end(settings, n)
                    base_transfer["per_account"] = _where(m, n)
            finally:
                await eco.close()
        report["services_peak_memory_mb"][f"accounts@{n}"] = await stop(f)
        out = accounts.rows(n, projection, base_projection, transfer, base_transfer)
        return out if "projection" in wanted else out[1:]
    except Exception as err:
        return [_failed(f"projection_rate@{n}", f"projection / month end at {n:,} accounts", err)]
    finally:
        await stop(f)


# ---- the simulation ------------------------------------------------------------------

async def _simulation_row(options: Options, kafka: str, mongo: str, report: dict[str, Any], say: Say) -> Row:
    from medcard.simulate.run import Options as SimulationOptions
    from medcard.simulate.run import simulate

    persons, months = options.simulation_persons, options.simulation_months
    figure = f"simulate --persons {persons:,} --months {months}, events/s"
    say(f"simulation: {persons:,} persons, {months} months (fast hashing)")
    try:
        result = await simulate(SimulationOptions(
            persons=persons, months=months, kafka_bootstrap=kafka, mongo_url=mongo,
            port_base=options.port_base + 13, fast_hashing=True, state_dir=options.state_dir / "bench"),
            lambda _what, _n: None)
    except Exception as err:
        return _failed("simulation", figure, err)
    report["services_peak_memory_mb"]["simulation"] = result.get("peak_memory_mb")
    return Row("simulation", figure, result["events_per_second"], "events/s", None, "-",
               "report it; the run must complete", all(result["invariants"].values()), None,
               size=persons, detail={k: result.get(k) for k in (
                   "wall_seconds", "events_published", "peak_memory_mb", "invariants", "loss_to_block",
                   "namespace", "fast_hashing")})
