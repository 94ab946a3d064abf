"""What the fault tests share: services as real uvicorn processes on this suite's ports
(8201-8249), killed with SIGKILL when a test says so; whole topics read back from Kafka;
the domain invariants checked on what the topics and the projections say."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from medcard.services import ServiceProcess
from shared.bounded import cancel_and_wait, within
from shared.codec import from_record
from shared.events import CloudEvent
from shared.settings import SECRET_SETTINGS, Settings
from shared.topic_reader import records_to_end, topic_reader
from shared.topics import TOPICS
from tests.helpers import STOP_SECONDS, auth, eventually
from tests.infra import REPO_ROOT

PORTS = range(8201, 8250)
"""The ports this suite's service processes may listen on (one block per test)."""


def service_env(settings: Settings) -> dict[str, str]:
    """The environment of a service process sharing the test's namespace and servers."""
    return {
        "MEDCARD_ENVIRONMENT": "test",
        "MEDCARD_NAMESPACE": settings.namespace,
        "MEDCARD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "MEDCARD_MONGO_URL": settings.mongo_url,
        **{f"MEDCARD_{name.upper()}": getattr(settings, name) for name in SECRET_SETTINGS},
        "MEDCARD_RELAY_POLL_SECONDS": "0.2",
        "MEDCARD_ARGON2_MEMORY_KIB": "1024",  # cheap PIN hashing: the tests are about faults, not argon2
        "MEDCARD_ARGON2_TIME_COST": "1",
        "MEDCARD_LOG_LEVEL": "WARNING",
    }


class Processes:
    """Service processes started by one test; all of them are stopped when it ends."""

    def __init__(self, settings: Settings, state_dir: Path) -> None:
        self.settings = settings
        self.state_dir = state_dir
        self.started: list[ServiceProcess] = []

    def process(self, name: str, port: int, replica: str = "a") -> ServiceProcess:
        assert port in PORTS, f"port {port} is outside this suite's block"
        # One state dir per replica: the pid file is named after the service.
        proc = ServiceProcess(self.state_dir / f"{name}-{replica}", name, port, service_env(self.settings))
        proc.state_dir.mkdir(parents=True, exist_ok=True)
        self.started.append(proc)
        return proc

    async def start(self, proc: ServiceProcess, timeout: float = 120.0) -> None:
        """Start the process and wait until its /ready answers 200."""
        await asyncio.to_thread(proc.start)
        await asyncio.to_thread(proc.wait_ready, timeout)

    async def run(self, name: str, port: int, replica: str = "a") -> ServiceProcess:
        proc = self.process(name, port, replica)
        await self.start(proc)
        return proc

    async def run_all(self, *services: tuple[str, int]) -> list[ServiceProcess]:
        """Several services started together (their start-ups overlap)."""
        procs = [self.process(name, port) for name, port in services]
        await asyncio.gather(*(self.start(p) for p in procs))
        return procs

    async def kill(self, proc: ServiceProcess) -> int:
        """SIGKILL: no shutdown hook runs, nothing is flushed. Returns once the process is gone."""
        pid = proc.pid()
        assert pid is not None, f"{proc.name} on {proc.port} is not running"
        await asyncio.to_thread(proc.kill)
        return pid

    def stop_all(self) -> None:
        for proc in self.started:
            with contextlib.suppress(Exception):
                proc.stop(timeout=10)


STATE_DIR = REPO_ROOT / ".state" / "faults"
"""Pid files and logs of the service processes, one folder per test namespace (not under the
system's temporary directory, which other pytest sessions of the same user may clean up)."""


@contextlib.contextmanager
def processes(settings: Settings) -> Iterator[Processes]:
    procs = Processes(settings, STATE_DIR / settings.namespace)
    try:
        yield procs
    finally:
        procs.stop_all()


@contextlib.asynccontextmanager
async def background(*jobs: Coroutine[Any, Any, Any]) -> AsyncIterator[list[asyncio.Task[Any]]]:
    """The jobs as tasks; whatever still runs when the block ends (a failed test) is cancelled,
    so no load outlives its test."""
    tasks = [asyncio.create_task(job) for job in jobs]
    try:
        yield tasks
    finally:
        stuck = [task for task in tasks if not await cancel_and_wait(task, STOP_SECONDS)]
        assert not stuck, f"background jobs still running {STOP_SECONDS:g} s after being cancelled: {stuck}"


@contextlib.asynccontextmanager
async def server_down(stop: Callable[[], None], start: Callable[[], None]) -> AsyncIterator[None]:
    """A real server stopped for the block, and started again (waiting until it answers) at its
    end, whatever happens inside: a failed test never leaves the next one without it."""
    await asyncio.to_thread(stop)
    try:
        yield
    finally:
        await asyncio.to_thread(start)


@contextlib.asynccontextmanager
async def http(base_url: str, timeout: float = 30.0) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout) as client:
        yield client


def as_role(settings: Settings, role: str, sub: str = "u-faults", person_id: str | None = None) -> dict[str, str]:
    return auth(settings, role, sub=sub, person_id=person_id)  # type: ignore[arg-type]


# ---- reading the topics back --------------------------------------------------------------

@dataclass
class Read:
    """One record as read back: its place in the log and, if it parses, its event."""

    topic: str
    partition: int
    offset: int
    event: CloudEvent


async def read_topics(settings: Settings, services: list[str], *, dlq: bool = False,
                      timeout: float = 120.0) -> list[Read] | list[Any]:
    """Every record of the services' topics (or of their dead-letter topics) up to the end
    offsets seen at the call, in partition order. Main topics come back parsed (a record that
    does not parse fails the test: the services only publish valid events); dead letters raw.
    Fails naming the partitions short of their end after ``timeout`` seconds."""
    names = [TOPICS[s].dlq(settings.namespace) if dlq else TOPICS[s].name(settings.namespace) for s in services]
    parts = [TopicPartition(n, p) for n, s in zip(names, services, strict=True) for p in range(TOPICS[s].partitions)]
    async with topic_reader(settings, "test") as consumer:
        fetched = await records_to_end(consumer, parts, stall_seconds=timeout, timeout=timeout)
    place = {(tp.topic, tp.partition): k for k, tp in enumerate(parts)}
    records = sorted(fetched, key=lambda r: (place[(r.topic, r.partition)], r.offset))
    if dlq:
        return records
    return [Read(r.topic, r.partition, r.offset, from_record(r)) for r in records]


@dataclass
class Log:
    """One service's topic, checked: per aggregate, the distinct events in log order."""

    by_key: dict[str, list[CloudEvent]] = field(default_factory=dict)
    republished: int = 0
    """Records that repeat an event already in the log (same id): at-least-once publication."""

    def events(self, name: str | None = None) -> list[CloudEvent]:
        return [e for evs in self.by_key.values() for e in evs if name is None or e.name == name]


def check_log(reads: list[Read]) -> Log:
    """Nothing lost, nothing doubled, in order: for every aggregate (record key), the distinct
    events appear in log order with sequences 1, 2, 3... without a gap; a record repeating an
    event (the relay republishing after a crash) is the very same event at the same sequence,
    and two different events never share a sequence."""
    log = Log()
    seen: dict[str, CloudEvent] = {}
    for read in sorted(reads, key=lambda r: (r.topic, r.partition, r.offset)):
        event = read.event
        if event.id in seen:
            assert seen[event.id] == event, f"event {event.id} republished with a different content"
            log.republished += 1
            continue
        seen[event.id] = event
        log.by_key.setdefault(event.partitionkey, []).append(event)
    for key, events in log.by_key.items():
        sequences = [e.sequence for e in events]
        assert sequences == list(range(1, len(events) + 1)), f"aggregate {key}: sequences {sequences}"
    return log


def no_purchase_after_block(bank: Log) -> None:
    """In the bank's own order of events per person, no purchase is authorised on a card
    after the event that blocked it."""
    for person, events in bank.by_key.items():
        blocked: set[str] = set()
        for e in events:
            if e.name == "CardBlocked":
                blocked.add(e.data.card_number)  # type: ignore[attr-defined]
            elif e.name == "PurchaseAuthorised":
                assert e.data.card_number not in blocked, f"{person}: purchase after the card was blocked"  # type: ignore[attr-defined]


def money_by_person(bank: Log) -> dict[str, int]:
    """Credits (monthly transfers) minus debits (authorised purchases) per person, from the topic."""
    money: dict[str, int] = defaultdict(int)
    for e in bank.events():
        if e.name == "MonthlyTransfer":
            money[e.partitionkey] += e.data.amount_fen  # type: ignore[attr-defined]
        elif e.name == "PurchaseAuthorised":
            money[e.partitionkey] -= e.data.amount_fen  # type: ignore[attr-defined]
    return dict(money)


async def check_money(bank_api: httpx.AsyncClient, settings: Settings, bank: Log, persons: list[str]) -> None:
    """Money conserved: every account's balance is its credits minus its debits on the topic,
    never negative, and the bank's ledger totals equal the topic's."""
    money = money_by_person(bank)
    operator = as_role(settings, "operator")
    for person in persons:
        resp = await bank_api.get(f"/v1/accounts/{person}", headers=operator)
        assert resp.status_code == 200, resp.text
        balance = resp.json()["balance_fen"]
        assert balance == money.get(person, 0) and balance >= 0, (person, balance, money.get(person))
    totals = (await bank_api.get("/v1/ledger/totals", headers=operator)).json()
    credits = sum(e.data.amount_fen for e in bank.events("MonthlyTransfer"))  # type: ignore[attr-defined]
    debits = sum(e.data.amount_fen for e in bank.events("PurchaseAuthorised"))  # type: ignore[attr-defined]
    assert (totals["credits_fen"], totals["debits_fen"], totals["balance_fen"]) == (credits, debits, credits - debits)


async def outbox_empty(client: httpx.AsyncClient, settings: Settings) -> bool:
    resp = await client.get("/ops/outbox", headers=as_role(settings, "operator"))
    return resp.status_code == 200 and resp.json()["pending"] == 0


async def caught_up(settings: Settings, group: str, services: list[str]) -> bool:
    """The consumer group has committed the end of every partition of the services' topics."""
    from aiokafka.admin import AIOKafkaAdminClient

    parts = [TopicPartition(TOPICS[s].name(settings.namespace), p) for s in services
             for p in range(TOPICS[s].partitions)]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=10_000)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False)
    await within(admin.start(), 30, "an admin client starting (Kafka)")
    try:
        await within(consumer.start(), 30, "an offsets reader starting (Kafka)")
        try:
            committed = {tp: meta.offset for tp, meta in (await admin.list_consumer_group_offsets(group)).items()}
            ends = await consumer.end_offsets(parts)
        finally:
            await within(consumer.stop(), STOP_SECONDS, "an offsets reader stopping (Kafka)")
    finally:
        await within(admin.close(), STOP_SECONDS, "an admin client closing (Kafka)")
    return all(end == 0 or committed.get(tp, -1) >= end for tp, end in ends.items())


# ---- a small population, set up through the real services -----------------------------------

@dataclass
class Holder:
    person_id: str
    id_number: str
    card: str = ""


async def known_to_cards(cards: httpx.AsyncClient, settings: Settings, person: str) -> bool:
    r = await cards.get(f"/v1/persons/{person}/cards", headers=as_role(settings, "clerk"))
    return r.status_code == 200


async def balances_settled(bank: httpx.AsyncClient, settings: Settings, persons: list[str]) -> bool:
    """Every account is open and has no contribution waiting for a month end."""
    for person in persons:
        r = await bank.get(f"/v1/accounts/{person}", headers=as_role(settings, "teller"))
        if r.status_code != 200 or r.json()["pending_contributions"]:
            return False
    return True


async def cardholders(src: Any, cards: httpx.AsyncClient, bank: httpx.AsyncClient, settings: Settings, n: int,
                      *, pin: str, month: str = "2026-01", amount_fen: int = 20_000) -> list[Holder]:
    """Persons registered (identity played by ``src``), each with a card issued by the cards
    service, its password set at the bank and one month's transfer on the account."""
    clerk, teller = as_role(settings, "clerk"), as_role(settings, "teller")
    holders = [Holder(*(await src.person())) for _ in range(n)]
    for h in holders:
        await eventually(lambda h=h: known_to_cards(cards, settings, h.person_id), timeout=60)
        r = await cards.post("/v1/cards", headers=clerk, json={"person_id": h.person_id})
        assert r.status_code == 201, r.text
        h.card = r.json()["card_number"]
        await src.contribution(h.person_id, month, amount_fen)

    async def pending(person: str) -> bool:
        r = await bank.get(f"/v1/accounts/{person}", headers=teller)
        return r.status_code == 200 and bool(r.json()["pending_contributions"])

    for h in holders:
        await eventually(lambda h=h: pending(h.person_id), timeout=60)
        r = await bank.put(f"/v1/cards/{h.card}/password", headers=teller, json={"pin": pin, "id_number": h.id_number})
        assert r.status_code == 200, r.text
    await src.month_end(month)
    await eventually(lambda: balances_settled(bank, settings, [h.person_id for h in holders]), timeout=60)
    return holders
