"""The four services as real processes (uvicorn), tracked like the local servers."""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path
from typing import Any

from medcard.ports import SERVICE_PORTS
from medcard.stack.process import HOST, ServerProcess, StackError
from shared.keys import KEYS_FILE_NAME

SERVICES = tuple(SERVICE_PORTS)
UVICORN_OPTIONS = ("--loop", "uvloop", "--http", "httptools", "--no-access-log", "--timeout-keep-alive", "30")
"""How every service (and the bench's baseline) is served: uvloop's event loop and the
httptools parser (C; the pure-Python h11 parser and asyncio's selector loop cost the POS
a third of its CPU), no access log (the services log what matters themselves)."""


class ServiceProcess(ServerProcess):
    """``uvicorn --factory services.<name>.app:create`` on 127.0.0.1:<port>."""

    def __init__(self, state_dir: Path, name: str, port: int, env: dict[str, str]) -> None:
        super().__init__(state_dir, port)
        self.name = name
        self.env = env

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "uvicorn", "--factory", f"services.{self.name}.app:create",
                "--host", HOST, "--port", str(self.port), *UVICORN_OPTIONS]

    def signature(self) -> list[str]:
        return [f"services.{self.name}.app:create", str(self.port)]

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def probe(self, timeout: float) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ready", timeout=timeout) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False


class ServiceFleet:
    """The four services, sharing one Kafka and one MongoDB-wire server, and in development
    the keys generated for the state folder (``keys.json``) unless others are given."""

    def __init__(self, state_dir: Path, *, kafka_bootstrap: str, mongo_url: str,
                 ports: dict[str, int] | None = None, extra_env: dict[str, str] | None = None) -> None:
        env = {"MEDCARD_KAFKA_BOOTSTRAP": kafka_bootstrap, "MEDCARD_MONGO_URL": mongo_url,
               "MEDCARD_KEYS_FILE": str(Path(state_dir).absolute() / KEYS_FILE_NAME), **(extra_env or {})}
        ports = ports or SERVICE_PORTS
        (Path(state_dir) / "services").mkdir(parents=True, exist_ok=True)
        self.processes = [ServiceProcess(Path(state_dir) / "services", n, ports[n], env) for n in SERVICES]

    def up(self, timeout: float = 90.0) -> None:
        for proc in self.processes:
            proc.start()
        for proc in self.processes:
            proc.wait_ready(timeout)

    def down(self, timeout: float = 20.0) -> None:
        for proc in self.processes:
            proc.stop(timeout)

    def urls(self) -> dict[str, str]:
        return {p.name: p.url for p in self.processes}

    def status(self) -> dict[str, dict[str, Any]]:
        return {
            p.name: {"running": (pid := p.pid()) is not None, "ready": pid is not None and p.probe(2.0),
                     "pid": pid, "address": p.url, "log": str(p.log_file)}
            for p in self.processes
        }

    def get(self, name: str) -> ServiceProcess:
        for proc in self.processes:
            if proc.name == name:
                return proc
        raise StackError(f"no service named {name}")
