"""The local stack: one Kafka node, and FerretDB 2 on PostgreSQL 15 with DocumentDB.

Real servers without Docker, all on 127.0.0.1.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from medcard.stack.documentdb import install_extensions
from medcard.stack.ferretdb import FerretServer, ensure_ferretdb, ferretdb_build_dir
from medcard.stack.kafka import KafkaServer, ensure_kafka, kafka_home
from medcard.stack.postgres import PostgresServer
from medcard.stack.process import ServerProcess, StackError
from shared import keys

REPO_ROOT = Path(__file__).resolve().parents[2]

REQUIRED_TOOLS = {
    "java": "Java 17+ runs the Kafka broker",
    "mvn": "Apache Maven fetches the Kafka jars",
    "go": "Go builds FerretDB",
}


def default_cache_dir() -> Path:
    """``$MEDCARD_CACHE_DIR``, else ``$XDG_CACHE_HOME/medcard``, else ``~/.cache/medcard``."""
    if os.environ.get("MEDCARD_CACHE_DIR"):
        return Path(os.environ["MEDCARD_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "medcard"


def default_state_dir() -> Path:
    """``$MEDCARD_STATE_DIR``, else ``.state/stack`` under the current directory (also where
    development keeps its generated keys)."""
    return keys.default_state_dir()


def check_tools() -> None:
    """Raise :class:`StackError` naming every required tool missing from PATH."""
    missing = [f"{tool} ({why})" for tool, why in REQUIRED_TOOLS.items() if not shutil.which(tool)]
    if missing:
        raise StackError("missing required tool(s) on PATH: " + "; ".join(missing))


class LocalStack:
    """Kafka on ``kafka_port`` (+ controller port), FerretDB on ``mongo_port`` and
    its PostgreSQL on ``postgres_port`` (default: ``mongo_port - 2000``).

    Builds live in ``cache_dir`` (shared), data, pid files and logs in
    ``state_dir`` (one per stack). Everything binds to 127.0.0.1.
    """

    def __init__(
        self,
        state_dir: Path | None = None,
        kafka_port: int = 19092,
        kafka_controller_port: int = 19093,
        mongo_port: int = 27027,
        cache_dir: Path | None = None,
        postgres_port: int | None = None,
    ) -> None:
        self.state_dir = Path(state_dir or default_state_dir()).absolute()
        self.cache_dir = Path(cache_dir or default_cache_dir()).absolute()
        self.kafka = KafkaServer(
            self.state_dir / "kafka", kafka_port, kafka_controller_port,
            libs_dir=kafka_home(self.cache_dir) / "libs",
        )
        self.postgres = PostgresServer(self.state_dir / "postgres", postgres_port or mongo_port - 2000)
        self.ferret = FerretServer(
            self.state_dir / "ferretdb", mongo_port, self.postgres.url,
            binary=ferretdb_build_dir(self.cache_dir) / "ferretdb",
        )

    @property
    def servers(self) -> list[ServerProcess]:
        """In start order: FerretDB needs PostgreSQL (stopped in the reverse order)."""
        return [self.kafka, self.postgres, self.ferret]

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka.bootstrap

    @property
    def mongo_url(self) -> str:
        return self.ferret.url

    def install(self) -> None:
        """Fetch the Kafka jars, build DocumentDB and FerretDB into the cache and install
        the extension into PostgreSQL (each step a no-op when already done)."""
        check_tools()
        self.kafka.libs_dir = ensure_kafka(self.cache_dir)
        install_extensions(self.cache_dir, REPO_ROOT)
        self.ferret.binary = ensure_ferretdb(self.cache_dir)

    def up(self, timeout: float = 120.0) -> None:
        """Install, format and start whatever is not running, then wait until both answer.

        Raises :class:`StackError` naming the port if one is taken by a process
        that is not ours; nothing is started in that case.
        """
        check_tools()
        with self._lock():
            to_start = [s for s in self.servers if not s.is_running()]
            taken = [port for s in to_start for port in s.taken_ports()]
            if taken:
                raise StackError(
                    f"port {', '.join(map(str, taken))} on 127.0.0.1 is already in use by "
                    "a process that is not part of this stack (choose other ports or stop it)"
                )
            if to_start:
                self.install()
                self.kafka.format()
            if self.kafka in to_start:
                self.kafka.start()  # the JVM starts while the database does
            if self.postgres in to_start:
                self.postgres.start()
            self.postgres.wait_ready(timeout)
            self.postgres.create_extension()
            if self.ferret in to_start:
                self.ferret.start()
            for server in (self.ferret, self.kafka):
                server.wait_ready(timeout)

    def down(self, timeout: float = 30.0) -> None:
        """Stop every server (asked, then SIGKILL after ``timeout``); data is kept."""
        with self._lock():
            for server in reversed(self.servers):
                server.stop(timeout)

    # -- outages, for fault tests and the simulation's soak: start waits until ready --
    # The database outage stops the MongoDB-wire server (what the services talk to);
    # PostgreSQL behind it keeps running.
    def stop_kafka(self) -> None:
        self.kafka.stop()

    def start_kafka(self) -> None:
        self.kafka.start()
        self.kafka.wait_ready()

    def stop_mongo(self) -> None:
        self.ferret.stop()

    def start_mongo(self) -> None:
        self.ferret.start()
        self.ferret.wait_ready()

    def status(self) -> dict[str, dict[str, Any]]:
        """Per server: running, ready (answered a request), pid, version, address, ports, log."""
        info: dict[str, dict[str, Any]] = {}
        addresses = {"kafka": self.kafka_bootstrap, "postgres": self.postgres.url, "ferretdb": self.mongo_url}
        for server in self.servers:
            pid = server.pid()
            info[server.name] = {
                "running": pid is not None,
                "ready": pid is not None and server.probe(timeout=2.0),
                "pid": pid,
                "version": server.version(),
                "address": addresses[server.name],
                "ports": server.ports,
                "log": str(server.log_file),
            }
        return info

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise up/down of the same state dir across processes."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
