"""FerretDB v2: the MongoDB wire protocol in front of PostgreSQL with DocumentDB.

FerretDB's source comes from the Go module proxy (``github.com/FerretDB/FerretDB/v2``)
and is built once into the cache. Two facts of v2.5.0 built outside its repository:
``build/version/version.txt`` must be written (else it reports "unknown"), and its
``setGOMAXPROCS`` exists only for Go < 1.25, so a six-line file under a ``go1.25`` build
tag supplies it for newer toolchains. The server itself keeps no data: everything is in
PostgreSQL (:mod:`medcard.stack.postgres`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from medcard.stack.process import HOST, ServerProcess, StackError, tail

FERRETDB_VERSION = "v2.5.0"
FERRETDB_MODULE = "github.com/FerretDB/FerretDB/v2"
GOMAXPROCS_GO125 = """//go:build go1.25

package main

import "log/slog"

// Go 1.25+ takes GOMAXPROCS from the container CPU limit itself (medcard build fix).
func setGOMAXPROCS(*slog.Logger) {}
"""


def ferretdb_build_dir(cache_dir: Path) -> Path:
    return Path(cache_dir) / f"ferretdb-{FERRETDB_VERSION}"


def ensure_ferretdb(cache_dir: Path) -> Path:
    """Return the FerretDB binary, building it with ``go build`` the first time.

    The build happens in a scratch copy of the module and the binary is moved into
    place only when complete, so an interrupted build is simply redone.
    """
    build = ferretdb_build_dir(cache_dir)
    binary = build / "ferretdb"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    if shutil.which("go") is None:
        raise StackError("go is not on PATH; it is needed to build FerretDB")
    build.mkdir(parents=True, exist_ok=True)
    log = build / "go.log"
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod -buildvcs=false", "CGO_ENABLED": "0"}
    with open(log, "wb") as out:
        found = subprocess.run(
            ["go", "mod", "download", "-json", f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"],
            cwd=build, env=env, capture_output=True, check=False,
        )
        out.write(found.stdout + found.stderr)
    if found.returncode != 0:
        raise StackError(f"fetching FerretDB {FERRETDB_VERSION} from the Go module proxy failed:\n{tail(log)}")
    source = build / "src"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(json.loads(found.stdout)["Dir"], source)
    for path in source.rglob("*"):  # the module cache is read-only
        path.chmod(path.stat().st_mode | 0o200)
    (source / "build/version/version.txt").write_text(FERRETDB_VERSION + "\n")
    (source / "cmd/ferretdb/gomaxprocs_go125.go").write_text(GOMAXPROCS_GO125)
    with open(log, "ab") as out:
        built = subprocess.run(
            ["go", "build", "-trimpath", "-o", str(build / "ferretdb.partial"), "./cmd/ferretdb"],
            cwd=source, env=env, stdout=out, stderr=subprocess.STDOUT, check=False,
        )
    if built.returncode != 0:
        raise StackError(f"building FerretDB with go failed (see {log}):\n{tail(log)}")
    (build / "ferretdb.partial").replace(binary)
    shutil.rmtree(source, ignore_errors=True)
    return binary


def ferretdb_version(binary: Path) -> str:
    """``v2.5.0`` as the binary reports it ('' if it cannot be run)."""
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10,
                             check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    for line in out.splitlines():
        if line.startswith("version:"):
            return line.split(":", 1)[1].strip()
    return ""


class FerretServer(ServerProcess):
    """FerretDB v2 on ``port``, talking to the stack's PostgreSQL; no data of its own."""

    name = "ferretdb"

    def __init__(self, state_dir: Path, port: int, postgres_url: str, binary: Path | None = None) -> None:
        super().__init__(state_dir, port)
        self.postgres_url = postgres_url
        self.binary = Path(binary) if binary else None

    @property
    def url(self) -> str:
        return f"mongodb://{HOST}:{self.port}/"

    def version(self) -> str:
        return ferretdb_version(self.binary) if self.binary else ""

    def prepare(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        if self.binary is None:
            raise StackError("FerretServer needs binary (see ensure_ferretdb)")
        return [
            str(self.binary), *self.signature(),
            f"--postgresql-url={self.postgres_url}",
            "--no-auth",             # a local stack on 127.0.0.1, as MongoDB's own default
            "--debug-addr=",         # no HTTP debug listener (its default takes port 8088)
            "--telemetry=disable",
            "--log-level=warn",
        ]

    def signature(self) -> list[str]:
        return [f"--listen-addr={HOST}:{self.port}", f"--state-dir={self.state_dir}"]

    def probe(self, timeout: float) -> bool:
        """A real ``ping`` command through pymongo (it reaches PostgreSQL too)."""
        from pymongo import MongoClient
        from pymongo.errors import PyMongoError

        ms = int(timeout * 1000)
        client: MongoClient[dict[str, Any]] = MongoClient(
            self.url, directConnection=True, serverSelectionTimeoutMS=ms,
            connectTimeoutMS=ms, socketTimeoutMS=ms,
        )
        try:
            return client.admin.command("ping").get("ok") == 1
        except PyMongoError:
            return False
        finally:
            client.close()
