"""FerretDB v1 (MongoDB wire protocol over SQLite), built from the bundled Go wrapper.

The wrapper in ``medcard/stack/ferretdb/`` embeds ``github.com/FerretDB/FerretDB``
and takes ``-listen-addr`` and ``-sqlite-url``. FerretDB's own source comes from the
Go module proxy and is built with one patch (``ferretdb_patch``: atomic single-document
writes) through a ``replace`` directive; the binary is built once per source hash.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from medcard.stack.ferretdb_patch import PATCH_VERSION, module_source, patched_copy
from medcard.stack.process import HOST, ServerProcess, StackError, tail

FERRETDB_VERSION = "1.24.2"
FALLBACK_TOOLCHAIN = "go1.24.3"
WRAPPER_SOURCES = Path(__file__).with_name("ferretdb")


def _source_files() -> list[Path]:
    files = [WRAPPER_SOURCES / "go.mod", WRAPPER_SOURCES / "go.sum"]
    return files + sorted(WRAPPER_SOURCES.glob("*.go"))


def source_hash() -> str:
    """SHA-256 over the wrapper's go.mod, go.sum and Go files."""
    digest = hashlib.sha256(f"{FERRETDB_VERSION}:{PATCH_VERSION}".encode())
    digest.update(Path(__file__).with_name("ferretdb_patch.py").read_bytes())
    for path in _source_files():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def ferretdb_build_dir(cache_dir: Path) -> Path:
    """One build folder per source hash: checkouts of different versions (branches,
    worktrees) each keep their own binary instead of rebuilding over each other."""
    return Path(cache_dir) / f"ferretdb-build-{source_hash()[:16]}"


def ensure_ferretdb(cache_dir: Path) -> Path:
    """Return the path of the FerretDB binary, building it with ``go build`` if needed.

    The binary is reused while the wrapper sources' hash is unchanged. The
    build uses the local Go toolchain and retries with
    :data:`FALLBACK_TOOLCHAIN` (fetched through the module proxy) if that fails.
    """
    build = ferretdb_build_dir(cache_dir)
    binary, stamp = build / "ferretdb", build / ".source-hash"
    wanted = source_hash()
    if binary.is_file() and stamp.is_file() and stamp.read_text().strip() == wanted:
        return binary
    if shutil.which("go") is None:
        raise StackError("go is not on PATH; it is needed to build FerretDB")
    build.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    for old in build.glob("*.go"):
        old.unlink()
    for path in _source_files():
        shutil.copy2(path, build / path.name)
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod -buildvcs=false"}
    patched_copy(module_source(FERRETDB_VERSION, env), build / "ferretdb-src")
    with open(build / "go.mod", "a") as gomod:
        gomod.write("\nreplace github.com/FerretDB/FerretDB => ./ferretdb-src\n")
    log = build / "go.log"
    log.write_text("")
    for toolchain in ("local", FALLBACK_TOOLCHAIN):
        if _go_build(build, toolchain, log):
            (build / "ferretdb.partial").replace(binary)
            stamp.write_text(wanted + "\n")
            return binary
    raise StackError(f"building FerretDB with go failed (see {log}):\n{tail(log)}")


def _go_build(build: Path, toolchain: str, log: Path) -> bool:
    env = {**os.environ, "GOTOOLCHAIN": toolchain, "GOFLAGS": "-mod=mod -buildvcs=false"}
    with open(log, "ab") as out:
        out.write(f"$ GOTOOLCHAIN={toolchain} go build -o ferretdb.partial .\n".encode())
        out.flush()
        result = subprocess.run(
            ["go", "build", "-o", "ferretdb.partial", "."],
            cwd=build, env=env, stdout=out, stderr=subprocess.STDOUT, check=False,
        )
    return result.returncode == 0


class FerretServer(ServerProcess):
    """FerretDB with the SQLite handler, data under ``<state_dir>/data``."""

    name = "ferretdb"

    def __init__(self, state_dir: Path, port: int = 27027, binary: Path | None = None) -> None:
        super().__init__(state_dir, port)
        self.binary = Path(binary) if binary else None

    @property
    def url(self) -> str:
        return f"mongodb://{HOST}:{self.port}/"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        if self.binary is None:
            raise StackError("FerretServer needs binary (see ensure_ferretdb)")
        return [
            str(self.binary),
            "-listen-addr", f"{HOST}:{self.port}",
            *self.signature(),
        ]

    def signature(self) -> list[str]:
        return ["-sqlite-url", f"file:{self.data_dir}/"]

    def probe(self, timeout: float) -> bool:
        """A real ``ping`` command through pymongo."""
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
