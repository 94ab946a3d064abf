"""Shared plumbing for the local servers: errors, ports and detached processes.

A :class:`ServerProcess` runs one server in its own session, records its pid
in a file under its state directory and can be found again by a later
invocation (another CLI call, another test session).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

HOST = "127.0.0.1"

T = TypeVar("T")


class StackError(RuntimeError):
    """The local stack cannot do what was asked (missing tool, taken port, crash...)."""


def port_is_free(port: int, host: str = HOST) -> bool:
    """True if a server could listen on ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion, even when called from inside an event loop.

    The coroutine always runs on a fresh loop in a worker thread, so sync
    callers (CLI) and async callers (tests) share the same code path.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a text file ('' if it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (zombies of ours get reaped).

    A zombie thread-group leader whose other threads still run (a JVM during
    shutdown: its main thread is gone, its shutdown hooks are not) is alive.
    """
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our exited child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust kill(0)
    if stat.rsplit(")", 1)[-1].split()[0] != "Z":
        return True
    try:
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


class ServerProcess(ABC):
    """One server process owned by this package, tracked through a pid file.

    Subclasses give the command line and a readiness probe; this class starts,
    finds, waits for and stops the process.
    """

    name: str = "server"

    def __init__(self, state_dir: Path, port: int) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.port = port

    # -- to be provided by subclasses ---------------------------------------
    @abstractmethod
    def command(self) -> list[str]:
        """The command line that runs the server in the foreground."""

    @abstractmethod
    def probe(self, timeout: float) -> bool:
        """One real request against the server; True if it answered."""

    @abstractmethod
    def signature(self) -> list[str]:
        """Arguments of :meth:`command` that identify this very server (state dir paths)."""

    def prepare(self) -> None:  # noqa: B027 - an optional hook: most servers need nothing
        """Write config files and create directories before a start."""

    def environment(self) -> dict[str, str] | None:
        """Environment of the process (None: inherit this one's)."""
        return None

    def version(self) -> str:
        """The server's version as it reports it ('' when unknown)."""
        return ""

    def popen_kwargs(self) -> dict[str, Any]:
        """More arguments for :class:`subprocess.Popen` (another user, for one)."""
        return {}

    def stop_signal(self) -> signal.Signals:
        """The signal that asks the server to stop cleanly."""
        return signal.SIGTERM

    # -- paths ----------------------------------------------------------------
    @property
    def pid_file(self) -> Path:
        return self.state_dir / f"{self.name}.pid"

    @property
    def out_file(self) -> Path:
        """Where the process's stdout and stderr go."""
        return self.state_dir / "logs" / f"{self.name}.out"

    @property
    def log_file(self) -> Path:
        """The file to read to see what the server is doing."""
        return self.out_file

    @property
    def ports(self) -> list[int]:
        """Every port this server listens on."""
        return [self.port]

    # -- lifecycle ------------------------------------------------------------
    def pid(self) -> int | None:
        """The pid of our running server, or None.

        The pid file is checked against the process's command line (pids get
        reused); a stale pid file is removed, a lost one is recovered by
        looking for our command line in /proc.
        """
        try:
            pid: int | None = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            pid = None
        if pid is not None and _pid_alive(pid) and self._is_ours(pid):
            return pid
        pid = self._find_ours()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
        else:
            self.pid_file.write_text(f"{pid}\n")
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    def taken_ports(self) -> list[int]:
        """The ports this server needs that something else is using."""
        return [p for p in self.ports if not port_is_free(p)]

    def start(self) -> None:
        """Start the server detached from this process; no-op if already running."""
        if self.is_running():
            return
        taken = self.taken_ports()
        if taken:
            raise StackError(
                f"{self.name}: port {', '.join(map(str, taken))} on {HOST} is already "
                "in use by another process"
            )
        self.prepare()
        self.out_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.out_file, "ab") as out:
            proc = subprocess.Popen(
                self.command(),
                cwd=self.state_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                start_new_session=True,
                **self.popen_kwargs(),
            )
        self.pid_file.write_text(f"{proc.pid}\n")

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until the server answers a real request; StackError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.is_running():
                raise StackError(
                    f"{self.name} is not running (exited during start-up?)\n{self.recent_output()}"
                )
            if self.probe(timeout=min(5.0, max(1.0, deadline - time.monotonic()))):
                return
            if time.monotonic() >= deadline:
                raise StackError(
                    f"{self.name} did not become ready within {timeout:.0f}s; "
                    f"see {self.log_file}"
                )
            time.sleep(0.5)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; removes the pid file.

        Returns once the whole process is gone (all threads), so a restart can
        bind the same ports and lock the same data directory.
        """
        pid = self.pid()
        if pid is None:
            return
        self._signal(pid, self.stop_signal())
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _pid_alive(pid):
            self._signal(pid, signal.SIGKILL)
            while _pid_alive(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL at once, as a crash would, and wait until the process is gone."""
        pid = self.pid()
        if pid is None:
            return
        self._signal(pid, signal.SIGKILL)
        while _pid_alive(pid):
            time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)

    # -- helpers --------------------------------------------------------------
    def recent_output(self, lines: int = 20) -> str:
        """The last lines of the server's log (and of its stdout, if separate)."""
        files = dict.fromkeys([self.log_file, self.out_file])
        return "\n".join(f"--- {path}:\n{tail(path, lines)}" for path in files)

    def _matches(self, cmdline: bytes) -> bool:
        args = cmdline.split(b"\0")
        return all(arg.encode() in args for arg in self.signature())

    def _is_ours(self, pid: int) -> bool:
        """Guard against pid reuse: the command line must carry our signature."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return True  # no procfs: trust the pid file
        if not cmdline:
            return True  # a zombie leader (exiting JVM) shows an empty command line
        return self._matches(cmdline)

    def _find_ours(self) -> int | None:
        """A live process in /proc whose command line carries our signature."""
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline and self._matches(cmdline) and _pid_alive(int(entry.name)):
                return int(entry.name)
        return None

    def _signal(self, pid: int, sig: signal.Signals) -> None:
        try:
            os.killpg(pid, sig)  # the server leads its own session/process group
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
