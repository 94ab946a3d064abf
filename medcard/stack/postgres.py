"""PostgreSQL 15 with DocumentDB: the storage behind FerretDB, on 127.0.0.1 only.

PostgreSQL refuses to run as root, so when the stack runs as root the server runs as
the ``postgres`` user that Debian's package creates. Its data lives under the stack's
state folder when that user can reach it; when it cannot (a state folder inside
root's home, mode 700), the data goes to ``/var/lib/medcard/<digest of the state
folder>`` and the state folder holds a link to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from medcard.stack.documentdb import PG_BIN
from medcard.stack.process import HOST, ServerProcess, StackError

PG_USER = "postgres"
FALLBACK_ROOT = Path("/var/lib/medcard")
SETTINGS = {
    "listen_addresses": HOST,
    "unix_socket_directories": "",   # TCP only: a socket path may not exceed 107 bytes
    "max_connections": "200",
    # 1 GB of pages of its own: with 256 MB the 100,000-person run read the messages' and the
    # accounts' pages from the operating system's cache 7,500 times a second (hit ratios of
    # 30% and 63%): no disk wait, but a copy of 8 kB and an eviction each, in system CPU.
    "shared_buffers": "1GB",
    # Checkpoints far apart: after each one, the first change of every page writes the whole
    # page to the WAL. With the default 1GB the 100,000-person run checkpointed every 80 s
    # and full pages were 62% of its WAL (7-10 MB/s); lz4 shrinks those that remain. The price:
    # a restart after a crash replays up to 10 minutes of WAL.
    "max_wal_size": "4GB",
    "checkpoint_timeout": "10min",
    "wal_compression": "lz4",
    # A document over 2 kB (a bank account with its ledger: 2.5 kB) is compressed at every
    # write and decompressed at every read; pglz took 5.4% of PostgreSQL's CPU in the
    # 100,000-person run (perf), lz4 1.8% once the accounts had been rewritten.
    "default_toast_compression": "lz4",
    # Vacuum a table once 5% of its rows are dead (20% by default). DocumentDB's indexes keep
    # an entry for every dead version of a document until then, and a read through them visits
    # each: in the 100,000-person run the messages' status index held 350,000 dead entries of
    # 1.8 million rows, and every look for due messages read 188,000 of them (3.8 million
    # heap pages a minute).
    "autovacuum_vacuum_scale_factor": "0.05",
    "shared_preload_libraries": "pg_cron,pg_documentdb_core,pg_documentdb",
    "cron.database_name": "postgres",
    "documentdb.enableLetAndCollationForQueryMatch": "true",
    "documentdb.enableNowSystemVariable": "true",
    "documentdb.enableSortbyIdPushDownToPrimaryKey": "true",
    "documentdb.enableSchemaValidation": "true",
    "documentdb.enableBypassDocumentValidation": "true",
    "documentdb.enableUserCrud": "true",
    "documentdb.maxUserLimit": "100",
    "logging_collector": "off",
}


def _as_postgres() -> bool:
    return os.geteuid() == 0


class PostgresServer(ServerProcess):
    """One PostgreSQL cluster, formatted on first start with the DocumentDB extension."""

    name = "postgres"

    @property
    def url(self) -> str:
        return f"postgres://{PG_USER}@{HOST}:{self.port}/postgres"

    @property
    def data_dir(self) -> Path:
        """``<state>/data``, or where its link points (the server's user may not reach the link)."""
        link = self.state_dir / "data"
        return link.resolve() if link.is_symlink() else link

    def version(self) -> str:
        try:
            out = subprocess.run([str(PG_BIN / "postgres"), "--version"], capture_output=True, text=True,
                                 timeout=10, check=False).stdout
        except (OSError, subprocess.TimeoutExpired):
            return ""
        found = re.search(r"\(PostgreSQL\) (\S+)", out)
        return found.group(1) if found else ""

    # -- the user that runs it -------------------------------------------------
    def _user_kwargs(self) -> dict[str, Any]:
        if not _as_postgres():
            return {}
        try:
            entry = pwd.getpwnam(PG_USER)
        except KeyError:
            raise StackError(f"running as root, PostgreSQL needs the '{PG_USER}' user "
                             "(Debian's postgresql package creates it)") from None
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def environment(self) -> dict[str, str] | None:
        env = {"PATH": f"{PG_BIN}:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        if _as_postgres():
            env["HOME"] = pwd.getpwnam(PG_USER).pw_dir
        return env

    def _reachable_by_user(self, folder: Path) -> bool:
        done = subprocess.run(["test", "-w", str(folder), "-a", "-x", str(folder)], check=False, cwd="/",
                              **self._user_kwargs())
        return done.returncode == 0

    def _place_data_dir(self) -> None:
        """Make :attr:`data_dir` exist (empty if new) where the server's user can write it."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        link = self.state_dir / "data"
        if link.exists():
            return
        if not _as_postgres():
            self.data_dir.mkdir(mode=0o700)
            return
        entry = pwd.getpwnam(PG_USER)
        os.chown(self.state_dir, entry.pw_uid, entry.pw_gid)
        if self._reachable_by_user(self.state_dir):
            self.data_dir.mkdir(mode=0o700)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            return
        digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:16]
        target = FALLBACK_ROOT / f"pg-{digest}"
        FALLBACK_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)  # left by a state folder since wiped
        target.mkdir(mode=0o700)
        os.chown(target, entry.pw_uid, entry.pw_gid)
        if link.is_symlink():
            link.unlink()
        link.symlink_to(target)

    # -- ServerProcess ---------------------------------------------------------
    def prepare(self) -> None:
        """``initdb`` the first time (trust auth: it listens on 127.0.0.1 only)."""
        if not PG_BIN.joinpath("postgres").is_file():
            raise StackError(f"PostgreSQL 15 is not installed ({PG_BIN}); run 'medcard stack install'")
        self._place_data_dir()
        if (self.data_dir / "PG_VERSION").is_file():
            return
        done = subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", PG_USER, "--auth=trust",
             "-E", "UTF8", "--locale=C.UTF-8"],
            capture_output=True, text=True, env=self.environment(), check=False, cwd="/",
            **self._user_kwargs(),
        )
        if done.returncode != 0:
            raise StackError(f"initdb failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")

    def command(self) -> list[str]:
        settings = {**SETTINGS, "port": str(self.port)}
        return [str(PG_BIN / "postgres"), *self.signature(),
                *(arg for key, value in settings.items() for arg in ("-c", f"{key}={value}"))]

    def signature(self) -> list[str]:
        return ["-D", str(self.data_dir)]

    def popen_kwargs(self) -> dict[str, Any]:
        return self._user_kwargs()

    def probe(self, timeout: float) -> bool:
        """``pg_isready``: the server accepts connections (not merely the port is open)."""
        try:
            done = subprocess.run(
                [str(PG_BIN / "pg_isready"), "-q", "-h", HOST, "-p", str(self.port), "-U", PG_USER,
                 "-d", "postgres", "-t", str(max(1, int(timeout)))],
                check=False, timeout=timeout + 5,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0

    def create_extension(self) -> None:
        """``CREATE EXTENSION documentdb`` (with pg_cron, rum, postgis, vector) once."""
        done = subprocess.run(
            [str(PG_BIN / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-h", HOST, "-p", str(self.port), "-U",
             PG_USER, "-d", "postgres", "-c", "SET client_min_messages = warning",
             "-c", "CREATE EXTENSION IF NOT EXISTS documentdb CASCADE"],
            capture_output=True, text=True, check=False, timeout=120,
        )
        if done.returncode != 0:
            raise StackError(f"creating the DocumentDB extension failed:\n{done.stdout}{done.stderr}")

    def stop_signal(self) -> signal.Signals:
        """Fast shutdown: clients are disconnected (SIGTERM would wait for them to leave)."""
        return signal.SIGINT

    def _signal(self, pid: int, sig: signal.Signals) -> None:
        """Only the postmaster: it stops its backends itself (SIGKILL goes to all, as a crash)."""
        if sig == signal.SIGKILL:
            super()._signal(pid, sig)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
