"""What every benchmark row shares: the row itself, percentiles, the machine, service
processes on a fresh namespace, and a few Kafka and HTTP helpers."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from medcard.services import UVICORN_OPTIONS, ServiceFleet, ServiceProcess
from medcard.simulate.client import Ecosystem
from medcard.simulate.driver import group_lag
from medcard.simulate.run import SIMULATION_RATES, peak_memory_mb
from medcard.stack.process import HOST
from shared.auth import issue_token
from shared.settings import SECRET_SETTINGS, Settings
from shared.topic_reader import batches_to_end, topic_reader
from shared.topics import partitions_of

SERVICE_ORDER = ("identity", "cards", "bank", "notifications")


@dataclass
class Row:
    """One line of the benchmark table (and of its JSON)."""

    key: str
    """Stable machine name of the row, e.g. ``pos_rps`` or ``projection_rate@10000``."""
    figure: str
    value: float | None
    unit: str
    baseline: float | None
    baseline_figure: str
    goal: str
    met: bool
    ratio: float | None = None
    size: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or not baseline:
        return None
    return round(value / baseline, 3)


def percentile(values: Iterable[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def rate(count: float, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


# ---- the machine -----------------------------------------------------------------------

def machine() -> dict[str, Any]:
    """Cores, CPU model, RAM, load and software of the machine the figures come from."""
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": None,
        "ram_gib": None,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    with contextlib.suppress(OSError):  # not Linux: the model and memory stay unknown
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    return info


# ---- service processes on a fresh namespace -------------------------------------------

@dataclass
class Namespace:
    """A fresh namespace (topics, groups, databases) and the secrets its services share."""

    name: str
    kafka: str
    mongo: str
    operator_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def fresh(cls, prefix: str, kafka: str, mongo: str) -> Namespace:
        ns = cls(f"{prefix}{secrets.token_hex(3)}", kafka, mongo)
        ns.env = {
            "MEDCARD_ENVIRONMENT": "development",
            "MEDCARD_NAMESPACE": ns.name,
            **{f"MEDCARD_{name.upper()}": secrets.token_urlsafe(40) for name in SECRET_SETTINGS},
            **SIMULATION_RATES,
            "MEDCARD_IDENTITY_BOOTSTRAP_OPERATOR_PASSWORD": ns.operator_password,
            "MEDCARD_LOG_LEVEL": "WARNING",
            # Cheap argon2: set-up sets thousands of PINs; the POS verifies a right PIN with
            # argon2 only once per card anyway (then from its in-memory cache).
            "MEDCARD_ARGON2_MEMORY_KIB": "1024",
            "MEDCARD_ARGON2_TIME_COST": "1",
        }
        return ns

    @property
    def settings(self) -> Settings:
        keys: dict[str, Any] = {name: self.env[f"MEDCARD_{name.upper()}"] for name in SECRET_SETTINGS}
        return Settings(environment="development", namespace=self.name, kafka_bootstrap=self.kafka,
                        mongo_url=self.mongo, **keys)


class BaselineProcess(ServiceProcess):
    """The bare FastAPI baseline app, run exactly like a service (uvicorn, same flags)."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "uvicorn", "--factory", "medcard.bench.baseline_app:create",
                "--host", HOST, "--port", str(self.port), *UVICORN_OPTIONS]

    def signature(self) -> list[str]:
        return ["medcard.bench.baseline_app:create", str(self.port)]


def fleet(ns: Namespace, state_dir: Path, ports: dict[str, int], services: Iterable[str]) -> ServiceFleet:
    """The named services as processes on the namespace (not started)."""
    wanted = set(services)
    f = ServiceFleet(state_dir, kafka_bootstrap=ns.kafka, mongo_url=ns.mongo, ports=ports, extra_env=ns.env)
    f.processes = [p for p in f.processes if p.name in wanted]
    return f


def meter(ns: Namespace, f: ServiceFleet | None, extra: dict[str, int | None] | None = None) -> CpuMeter:
    """CPU of the fleet's services, the broker, the database and this process."""
    services = {p.name: p.pid() for p in f.processes} if f is not None else {}
    return CpuMeter.for_run(ns.kafka, ns.mongo, {**services, **(extra or {})})


def ports_from(base: int) -> dict[str, int]:
    return {name: base + i for i, name in enumerate(SERVICE_ORDER, 1)}


async def start(f: ServiceFleet) -> None:
    await asyncio.to_thread(f.down)  # a previous run killed midway may have left them
    await asyncio.to_thread(f.up)


async def stop(f: ServiceFleet) -> dict[str, float | None]:
    """Stop the fleet; returns each service's peak memory (MiB), read just before."""
    peaks = {p.name: peak_memory_mb(p.pid()) for p in f.processes}
    await asyncio.to_thread(f.down)
    return peaks


async def open_ecosystem(ns: Namespace, f: ServiceFleet) -> Ecosystem:
    eco = Ecosystem(f.urls(), ns.operator_password)
    await eco.open()
    await eco.login_operator()
    return eco


# ---- Kafka helpers ---------------------------------------------------------------------

class KafkaProbe:
    """An admin client and a group-less consumer, kept open for offsets and lags."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        self.ends = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)

    async def __aenter__(self) -> KafkaProbe:
        await self.admin.start()
        await self.ends.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.admin.close()
        await self.ends.stop()

    def partitions(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for p in range(partitions_of(topic, self.settings.namespace))]

    async def end_offsets(self, topic: str) -> dict[TopicPartition, int]:
        return dict(await self.ends.end_offsets(self.partitions(topic)))

    async def total(self, topic: str) -> int:
        return sum((await self.end_offsets(topic)).values())

    async def lag(self, group: str, topics: list[str]) -> int:
        return await group_lag(self.admin, self.ends, {group: topics}, self.settings.namespace)


async def drain(eco: Ecosystem, probe: KafkaProbe, timeout: float = 900.0) -> None:
    """Wait until every relay is idle and every consumer group caught up, twice in a row."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 2:
        statuses = [await eco.call(s, "GET", "/ops/drain", who="operator") for s in eco.urls]
        groups = {g: t for s in statuses for g, t in s["groups"].items()}
        lag = sum([await probe.lag(g, t) for g, t in groups.items()])
        quiet = quiet + 1 if all(s["relay_idle"] for s in statuses) and lag == 0 else 0
        if time.monotonic() > deadline:
            raise TimeoutError(f"the event streams did not drain in {timeout:.0f} s (lag {lag})")
        await asyncio.sleep(0.02 if quiet else 0.1)


async def read_topic(settings: Settings, topic: str, *, start: dict[TopicPartition, int] | None = None,
                     types: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Every record of a topic (from ``start`` offsets, else the beginning) up to its end now,
    as {type, time, subject, key, timestamp_ms}; only the given event names if ``types``."""
    parts = [TopicPartition(topic, p) for p in range(partitions_of(topic, settings.namespace))]
    out: list[dict[str, Any]] = []
    async with topic_reader(settings, "bench") as consumer:
        async for batch in batches_to_end(consumer, parts, start=start, max_records=5000):
            for r in batch:
                headers = {k: v.decode() for k, v in r.headers or ()}
                name = headers.get("ce_type", "").split(".")[-2:-1]
                name_s = name[0] if name else ""
                if not types or name_s in types:
                    out.append({"type": name_s, "time": headers.get("ce_time"),
                                "subject": headers.get("ce_subject"), "key": (r.key or b"").decode(),
                                "timestamp_ms": r.timestamp})
    return out


async def gather_limited(items: Iterable[Any], fn: Callable[[Any], Awaitable[Any]], limit: int) -> list[Any]:
    """Run ``fn`` over the items, at most ``limit`` at once; results in order."""
    sem = asyncio.Semaphore(limit)

    async def one(item: Any) -> Any:
        async with sem:
            return await fn(item)

    return list(await asyncio.gather(*(one(i) for i in items)))


# ---- where the time goes: CPU seconds per process, database commands per service -------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process (all its threads) so far."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return None


def listening_pid(port: int) -> int | None:
    """The process listening on a local TCP port (Linux /proc), if it can be found."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{parts[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None


def port_of(address: str) -> int | None:
    """The port of ``host:port`` or ``mongodb://host:port/...``."""
    rest = address.split("://", 1)[-1].split("/", 1)[0].split(",", maxsplit=1)[0]
    try:
        return int(rest.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None


class CpuMeter:
    """CPU seconds spent by named processes (services, servers, this process) over a phase."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid is not None}
        self._start: dict[str, float | None] = {}
        self._wall = 0.0

    @classmethod
    def for_run(cls, kafka: str, mongo: str, services: dict[str, int | None]) -> CpuMeter:
        servers = {"kafka": listening_pid(port_of(kafka) or 0), "database": listening_pid(port_of(mongo) or 0)}
        return cls({**services, **servers, "bench (load generator)": os.getpid()})

    def __enter__(self) -> CpuMeter:
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._machine = _machine_ticks()
        self._wall = time.perf_counter()
        self.result: dict[str, Any] = {}
        return self

    def __exit__(self, *_: object) -> None:
        wall = time.perf_counter() - self._wall
        used = {}
        for name, pid in self.pids.items():
            now, before = cpu_seconds(pid), self._start.get(name)
            if now is not None and before is not None:
                used[name] = round(now - before, 2)
        busy = _machine_ticks()
        total = (busy[0] - self._machine[0]) if busy and self._machine else 0
        others = None
        if total > 0 and busy and self._machine:
            cores_busy = (busy[1] - self._machine[1]) / total * (os.cpu_count() or 1)
            others = round(cores_busy - sum(used.values()) / wall, 2) if wall else None
        self.result = {"wall_seconds": round(wall, 2), "cpu_seconds": used,
                       "machine_cores_busy": round((busy[1] - self._machine[1]) / total * (os.cpu_count() or 1), 2)
                       if total > 0 and busy and self._machine else None,
                       "cores_used_by_others": others}

    def per(self, count: int) -> dict[str, float]:
        """CPU milliseconds per operation, by process."""
        if not count:
            return {}
        return {name: round(secs * 1000 / count, 3) for name, secs in self.result.get("cpu_seconds", {}).items()}


def _machine_ticks() -> tuple[int, int] | None:
    """(all ticks, busy ticks) of the whole machine so far, from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values[:8]), sum(values[:8]) - idle


async def db_commands(url: str, settings: Settings) -> dict[str, tuple[float, float]]:
    """A service's database commands so far, from its /metrics (read as an operator):
    "command collection [shape]" -> (count, seconds)."""
    import httpx

    token = issue_token(settings, sub="bench", role="operator")
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as client:
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        response.raise_for_status()
        text = response.text
    out: dict[str, list[float]] = {}
    for line in text.splitlines():
        for metric, slot in (("medcard_db_commands_total{", 0), ("medcard_db_command_seconds_total{", 1)):
            if line.startswith(metric):
                labels, value = line[len(metric):].rsplit("} ", 1)
                parsed = dict(part.split("=", 1) for part in labels.split('",') if "=" in part)
                parsed = {k: v.strip('"') for k, v in parsed.items()}
                key = f"{parsed.get('command')} {parsed.get('collection')} [{parsed.get('shape')}]"
                out.setdefault(key, [0.0, 0.0])[slot] += float(value)
    return {k: (v[0], v[1]) for k, v in out.items()}


def db_delta(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]], ops: int,
             top: int = 8) -> dict[str, Any]:
    """Per operation: database commands and milliseconds spent in them, the busiest first."""
    if not ops:
        return {}
    rows = []
    for key, (n, secs) in after.items():
        n0, s0 = before.get(key, (0.0, 0.0))
        if n - n0 > 0:
            rows.append((key, (n - n0) / ops, (secs - s0) * 1000 / ops))
    rows.sort(key=lambda r: -r[2])
    return {
        "commands_per_op": round(sum(r[1] for r in rows), 2),
        "db_ms_per_op": round(sum(r[2] for r in rows), 2),
        "busiest": {k: {"per_op": round(n, 2), "ms_per_op": round(ms_, 2)} for k, n, ms_ in rows[:top]},
    }


async def new_topic(settings: Settings, topic: str, partitions: int, producer: AIOKafkaProducer) -> None:
    """Create a baseline's topic and wait until ``producer`` can write to it (a new topic's
    leaders may take a moment: NotLeader right after creation)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    for _ in range(100):
        try:
            await producer.send_and_wait(topic, b"warm-up", key=b"warm-up")
            return
        except Exception:
            await asyncio.sleep(0.1)
