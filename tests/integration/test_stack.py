"""The local stack runs real servers: up, real requests, idempotent up, down, restart.

The tests of this module run in order against one stack on their own ports
(28092/28093 Kafka, 27047 FerretDB, 25047 PostgreSQL) with a temporary state dir. Every port is
below Linux's ephemeral range (32768-60999): a port inside it can be held by
any client socket of the suite, which once made this module fail in CI.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient

from typer.testing import CliRunner, Result

from medcard import cli
from medcard.stack import LocalStack, StackError, port_is_free
from medcard.stack.documentdb import PG_BIN, PG_LIB, install_extensions, stage_dir
from medcard.stack.ferretdb import FERRETDB_VERSION, ensure_ferretdb
from medcard.stack.kafka import ensure_kafka
from medcard.stack.local import REPO_ROOT, default_cache_dir
from shared.database import count, one_batch

pytestmark = pytest.mark.infra

KAFKA_PORT, CONTROLLER_PORT, MONGO_PORT, POSTGRES_PORT = 28092, 28093, 27047, 25047
TOPIC = "stack-test"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    local = LocalStack(tmp_path_factory.mktemp("stack"), KAFKA_PORT, CONTROLLER_PORT, MONGO_PORT,
                       postgres_port=POSTGRES_PORT)
    yield local
    local.down()


async def _consume_one(bootstrap: str, group: str) -> bytes:
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        message = await asyncio.wait_for(consumer.getone(), timeout=30)
        return message.value
    finally:
        await consumer.stop()


@pytest.mark.parametrize("tool", ["java", "mvn", "go"])
def test_missing_tool_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tool: str) -> None:
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == tool else real_which(name))
    with pytest.raises(StackError, match=rf"missing required tool\(s\) on PATH: {tool} \("):
        LocalStack(tmp_path, 28192, 28193, 27147).up()
    assert not any((tmp_path / name).exists() for name in ("kafka", "postgres", "ferretdb"))


def test_a_second_install_reuses_the_cached_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is fetched, built or copied again: only dpkg-query looks at the packages."""
    cache = default_cache_dir()
    libs, binary = ensure_kafka(cache), ensure_ferretdb(cache)  # the first install (done by setup)
    install_extensions(cache, REPO_ROOT)
    watched = (libs, binary, *libs.iterdir(), *stage_dir(cache).rglob("*"), PG_LIB / "pg_documentdb.so")
    before = {path: path.stat().st_mtime_ns for path in watched}
    real_run, ran = subprocess.run, []

    def only_dpkg_query(args: list[str], *rest: object, **kwargs: object) -> object:
        if args[0] != "dpkg-query":
            raise AssertionError(f"a cached install ran {args}")
        ran.append(args[0])
        return real_run(args, *rest, **kwargs)  # type: ignore[call-overload]
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name in ("mvn", "go") else real_which(name))
    monkeypatch.setattr(subprocess, "run", only_dpkg_query)
    assert (ensure_kafka(cache), ensure_ferretdb(cache)) == (libs, binary)
    install_extensions(cache, REPO_ROOT)
    assert ran == ["dpkg-query"]
    assert {path: path.stat().st_mtime_ns for path in before} == before


async def test_up_serves_real_requests(stack: LocalStack) -> None:
    await asyncio.to_thread(stack.up)

    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(TOPIC, b"hello", key=b"k")
    finally:
        await producer.stop()
    assert await _consume_one(stack.kafka_bootstrap, "g1") == b"hello"

    client: AsyncMongoClient = AsyncMongoClient(stack.mongo_url)
    try:
        await client.stacktest.docs.insert_one({"_id": "card-1", "holder": "Ada"})
        assert await client.stacktest.docs.find_one({"_id": "card-1"}) == {
            "_id": "card-1", "holder": "Ada"
        }
    finally:
        await client.close()


def _postgres_sessions(stack: LocalStack) -> int:
    """Backends PostgreSQL has started for clients of its database so far, less those of
    pg_cron's job runs (DocumentDB's index-build jobs run every 2 s, each on a new
    connection: a slow machine saw three in the 20 reads below)."""
    out = subprocess.run(
        [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(POSTGRES_PORT), "-U", "postgres", "-d", "postgres",
         "-Atc", "select (select sessions from pg_stat_database where datname = 'postgres')"
                 " - (select count(*) from cron.job_run_details)"],
        capture_output=True, text=True, check=True, timeout=30)
    return int(out.stdout)


async def test_reads_in_one_batch_and_counts_keep_their_postgresql_connection(stack: LocalStack) -> None:
    """A read with a limit and a sort that may take several batches costs FerretDB a
    PostgreSQL connection (a new backend each time); ``one_batch`` and ``count`` do not."""
    client: AsyncMongoClient = AsyncMongoClient(stack.mongo_url)
    try:
        docs = client.stacktest.cursors
        await docs.insert_many([{"_id": k, "status": "pending", "due": k} for k in range(300)])
        await count(docs, {"status": "pending"})  # the pool warmed

        async def opened(read: Callable[[], Awaitable[object]]) -> int:
            before = _postgres_sessions(stack)
            for _ in range(20):
                await read()
            return _postgres_sessions(stack) - before

        async def ours() -> None:
            # More than a first batch's 101: one batch holds them all.
            assert len(await one_batch(docs.find({"status": "pending"}).sort("due", 1), 250)) == 250
            assert await count(docs, {"status": "pending"}) == 300
            # Every match, sorted here rather than by the server: no cursor holds a connection.
            assert len(sorted(await docs.find({"status": "pending"}).to_list(), key=lambda d: d["due"])) == 300

        async def theirs() -> None:
            assert len(await docs.find({"status": "pending"}).sort("due", 1).limit(50).to_list()) == 50

        assert await opened(ours) <= 2
        assert await opened(theirs) >= 10, "the cost one_batch avoids is gone: its reason may be too"
    finally:
        await client.close()


def test_status_reports_running(stack: LocalStack) -> None:
    status = stack.status()
    for name in ("kafka", "postgres", "ferretdb"):
        assert status[name]["running"] and status[name]["ready"]
        assert isinstance(status[name]["pid"], int)
    assert status["kafka"]["address"] == f"127.0.0.1:{KAFKA_PORT}"
    assert status["ferretdb"]["address"] == f"mongodb://127.0.0.1:{MONGO_PORT}/"
    assert status["postgres"]["address"] == f"postgres://postgres@127.0.0.1:{POSTGRES_PORT}/postgres"
    assert status["ferretdb"]["version"] == FERRETDB_VERSION
    assert status["postgres"]["version"].startswith("15.")


def test_postgres_runs_unprivileged_on_loopback_with_its_data_in_reach(stack: LocalStack) -> None:
    pid = stack.postgres.pid()
    assert pid is not None
    owner = Path(f"/proc/{pid}").stat().st_uid
    data = stack.postgres.data_dir.resolve()
    assert (data / "PG_VERSION").is_file() and data.stat().st_uid == owner
    if os.geteuid() == 0:  # PostgreSQL refuses root: the stack runs it as 'postgres'
        assert owner == pwd.getpwnam("postgres").pw_uid
    listening = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    ours = [line.split()[3] for line in listening.splitlines() if f"pid={pid}," in line]
    assert ours == [f"127.0.0.1:{POSTGRES_PORT}"], listening


def test_second_up_is_a_noop(stack: LocalStack) -> None:
    pids = [server.pid() for server in stack.servers]
    stack.up()
    assert [server.pid() for server in stack.servers] == pids


def test_lost_pid_file_is_recovered(stack: LocalStack) -> None:
    pid = stack.kafka.pid()
    stack.kafka.pid_file.unlink()
    assert stack.kafka.pid() == pid
    assert stack.kafka.pid_file.read_text().strip() == str(pid)


def test_the_stack_command_reports_status_and_logs(stack: LocalStack) -> None:
    status = _stack_command(stack, "status")
    assert status.exit_code == 0, status.output
    assert status.output.count("ready") == 3 and str(stack.postgres.pid()) in status.output
    assert FERRETDB_VERSION in status.output
    logs = _stack_command(stack, "logs", "kafka", "--lines", "5")
    assert logs.exit_code == 0 and str(stack.kafka.log_file) in logs.output.replace("\n", "")
    assert "ferretdb" not in logs.output.split("\n", 1)[0]
    for name, server in (("postgres", stack.postgres), ("ferretdb", stack.ferret)):
        logs = _stack_command(stack, "logs", name, "--lines", "5")
        assert logs.exit_code == 0 and str(server.log_file) in logs.output.replace("\n", ""), logs.output
    again = _stack_command(stack, "up")
    assert again.exit_code == 0 and f"kafka {stack.kafka_bootstrap}" in again.output


async def _names(stack: LocalStack) -> tuple[set[str], set[str]]:
    client: AsyncMongoClient = AsyncMongoClient(stack.mongo_url)
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        return set(await client.list_database_names()), set(await admin.list_topics())
    finally:
        await admin.close()
        await client.close()


async def _leave_runs(stack: LocalStack, namespaces: list[str]) -> None:
    """What finished runs leave: a database per service and topics with their dead letters."""
    client: AsyncMongoClient = AsyncMongoClient(stack.mongo_url)
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        for ns in namespaces:
            for service in ("bank", "cards"):
                await client[f"{ns}_{service}"].accounts.insert_one({"_id": ns})
        await client.notarun.docs.insert_one({"_id": 1})
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)
                                   for ns in namespaces for name in (f"{ns}.bank", f"{ns}.bank.dlq")])
    finally:
        await admin.close()
        await client.close()


def test_prune_drops_what_finished_runs_left_and_keeps_the_rest(stack: LocalStack) -> None:
    asyncio.run(_leave_runs(stack, ["prunedone", "prunekept", "pruneresumable"]))
    progress = stack.state_dir.parent / "a-simulation" / "progress.json"
    progress.parent.mkdir(exist_ok=True)
    progress.write_text('{"namespace": "pruneresumable"}')

    listed = _stack_command(stack, "prune", "--keep", "prunekept")
    assert listed.exit_code == 0, listed.output
    assert "prunedone" in listed.output and "--yes drops them" in listed.output
    assert "prunekept" in listed.output.split("kept:")[1] and "pruneresumable" in listed.output.split("kept:")[1]
    databases, topics = asyncio.run(_names(stack))
    assert {"prunedone_bank", "prunedone_cards"} <= databases and "prunedone.bank.dlq" in topics  # listed only

    dropped = _stack_command(stack, "prune", "--keep", "prunekept", "--yes")
    assert dropped.exit_code == 0, dropped.output
    assert "dropped 2 databases and 2 topics" in dropped.output
    databases, topics = asyncio.run(_names(stack))
    assert not {"prunedone_bank", "prunedone_cards"} & databases
    assert not {"prunedone.bank", "prunedone.bank.dlq"} & topics
    assert {"prunekept_bank", "pruneresumable_cards", "notarun"} <= databases
    assert {"prunekept.bank", "pruneresumable.bank.dlq"} <= topics


def _stack_command(stack: LocalStack, *args: str) -> Result:
    """``medcard stack --state-dir ... --ports ... <args>`` as a user types it."""
    return CliRunner().invoke(cli.app, [
        "stack", "--state-dir", str(stack.state_dir), "--kafka-port", str(KAFKA_PORT),
        "--kafka-controller-port", str(CONTROLLER_PORT), "--mongo-port", str(MONGO_PORT),
        "--postgres-port", str(POSTGRES_PORT), *args,
    ], env={"COLUMNS": "400"})


def test_down_stops_every_server_and_frees_ports(stack: LocalStack) -> None:
    stack.down()
    status = stack.status()
    assert not any(info["running"] for info in status.values())
    assert not any(server.pid_file.exists() for server in stack.servers)
    for port in (KAFKA_PORT, CONTROLLER_PORT, MONGO_PORT, POSTGRES_PORT):
        assert port_is_free(port), port
    assert _stack_command(stack, "status").output.count("stopped") == 3


async def test_up_again_keeps_data(stack: LocalStack) -> None:
    await asyncio.to_thread(stack.up)

    client: AsyncMongoClient = AsyncMongoClient(stack.mongo_url)
    try:
        assert await client.stacktest.docs.find_one({"_id": "card-1"}) is not None
    finally:
        await client.close()
    assert await _consume_one(stack.kafka_bootstrap, "g2") == b"hello"


@pytest.mark.parametrize("which", ["kafka", "mongo", "postgres"])
def test_taken_port_is_named(tmp_path: Path, which: str) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = {"kafka_port": 28192, "kafka_controller_port": 28193, "mongo_port": 27147, "postgres_port": 25147}
        ports[f"{which}_port"] = taken
        other = LocalStack(tmp_path, **ports)
        with pytest.raises(StackError, match=rf"port {taken} on 127.0.0.1 is already in use"):
            other.up()
    assert not any(server.is_running() for server in other.servers)
