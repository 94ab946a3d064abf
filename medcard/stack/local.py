"""The local stack: one Kafka node and one FerretDB, real servers without Docker."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from medcard.stack.ferretdb import FerretServer, ensure_ferretdb, ferretdb_build_dir
from medcard.stack.kafka import KafkaServer, ensure_kafka, kafka_home
from medcard.stack.process import ServerProcess, StackError

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
    """``$MEDCARD_STATE_DIR``, else ``.state/stack`` under the current directory."""
    return Path(os.environ.get("MEDCARD_STATE_DIR") or Path.cwd() / ".state" / "stack")


def check_tools() -> None:
    """Raise :class:`StackError` naming every required tool missing from PATH."""
    missing = [f"{tool} ({why})" for tool, why in REQUIRED_TOOLS.items() if not shutil.which(tool)]
    if missing:
        raise StackError("missing required tool(s) on PATH: " + "; ".join(missing))


class LocalStack:
    """Kafka on ``kafka_port`` (+ controller port) and FerretDB on ``mongo_port``.

    Binaries live in ``cache_dir`` (shared), data, pid files and logs in
    ``state_dir`` (one per stack). Everything binds to 127.0.0.1.
    """

    def __init__(
        self,
        state_dir: Path | None = None,
        kafka_port: int = 19092,
        kafka_controller_port: int = 19093,
        mongo_port: int = 27027,
        cache_dir: Path | None = None,
    ) -> None:
        self.state_dir = Path(state_dir or default_state_dir()).absolute()
        self.cache_dir = Path(cache_dir or default_cache_dir()).absolute()
        self.kafka = KafkaServer(
            self.state_dir / "kafka", kafka_port, kafka_controller_port,
            libs_dir=kafka_home(self.cache_dir) / "libs",
        )
        self.ferret = FerretServer(
            self.state_dir / "ferretdb", mongo_port,
            binary=ferretdb_build_dir(self.cache_dir) / "ferretdb",
        )

    @property
    def servers(self) -> list[ServerProcess]:
        return [self.kafka, self.ferret]

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka.bootstrap

    @property
    def mongo_url(self) -> str:
        return self.ferret.url

    def install(self) -> None:
        """Fetch the Kafka jars and build FerretDB into the cache (no-op when cached)."""
        check_tools()
        self.kafka.libs_dir = ensure_kafka(self.cache_dir)
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
                for server in to_start:
                    server.start()
            for server in self.servers:
                server.wait_ready(timeout)

    def down(self, timeout: float = 30.0) -> None:
        """Stop both servers (SIGTERM, then SIGKILL after ``timeout``); data is kept."""
        with self._lock():
            for server in self.servers:
                server.stop(timeout)

    # -- outages, for fault tests and the simulation's soak: start waits until ready --
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
        """Per server: running, ready (answered a request), pid, address, ports, log."""
        info: dict[str, dict[str, Any]] = {}
        for server, address in ((self.kafka, self.kafka_bootstrap), (self.ferret, self.mongo_url)):
            pid = server.pid()
            info[server.name] = {
                "running": pid is not None,
                "ready": pid is not None and server.probe(timeout=2.0),
                "pid": pid,
                "address": address,
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
