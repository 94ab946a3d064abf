"""The ecosystem's secret keys: where development gets keys of its own, and how strong a
key must be.

No key is written in the source. In development a key that is not set is taken from the
installation's key file (``keys.json`` in the state folder, mode 0600), which the first
process to need it fills with random keys; every later process of the installation (the
four services, the command line, the console) reads the same keys from it. In tests a key
that is not set is random for the process. In production every key must be set, and a
key that is short, repetitive or of few characters, or one ever published by this project,
is refused.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import secrets
import stat
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

KEYS_FILE_NAME = "keys.json"
MIN_KEY_LENGTH = 32
MIN_KEY_BITS = 96
"""Least estimated entropy of a key (characters x Shannon entropy of their distribution):
a random 32-character hex key measures about 117 bits, a ``token_urlsafe(32)`` about 210."""
MIN_DISTINCT_CHARACTERS = 10
KNOWN_KEYS = frozenset({
    "dev-only-signing-key-change-me-0123456789",  # the development default of earlier versions
})
"""Keys that were once published with this project: they sign nothing, anywhere."""


def default_state_dir() -> Path:
    """``$MEDCARD_STATE_DIR``, else ``.state/stack`` under the current directory."""
    return Path(os.environ.get("MEDCARD_STATE_DIR") or Path.cwd() / ".state" / "stack")


def default_keys_file() -> Path:
    return default_state_dir() / KEYS_FILE_NAME


def new_key() -> str:
    """A fresh random key: 48 random bytes, URL-safe base64 (64 characters)."""
    return secrets.token_urlsafe(48)


def estimated_bits(value: str) -> float:
    """Length times the Shannon entropy of the key's character distribution."""
    counts = Counter(value)
    n = len(value)
    return -sum(c * math.log2(c / n) for c in counts.values()) if n else 0.0


def is_periodic(value: str) -> bool:
    """True when the key is a shorter string repeated (``abab...``, ``0123456789`` x 4)."""
    return len(value) > 1 and value in (value + value)[1:-1]


def key_weakness(value: str) -> str | None:
    """Why a key may not be used (no part of the key in the answer), or None."""
    if value in KNOWN_KEYS:
        return "is a key published with this project"
    if len(value) < MIN_KEY_LENGTH:
        return f"has fewer than {MIN_KEY_LENGTH} characters"
    if len(set(value)) < MIN_DISTINCT_CHARACTERS or is_periodic(value):
        return f"is repetitive (fewer than {MIN_DISTINCT_CHARACTERS} different characters, or a repeated pattern)"
    if estimated_bits(value) < MIN_KEY_BITS:
        return f"has too little entropy (under {MIN_KEY_BITS} bits estimated)"
    return None


_PROCESS_KEYS: dict[str, str] = {}


def process_keys(names: Iterable[str]) -> dict[str, str]:
    """Random keys that last as long as this process, one per name whoever asks (tests:
    nothing outlives them)."""
    return {name: _PROCESS_KEYS.setdefault(name, new_key()) for name in names}


def _owner_only(path: Path) -> None:
    """Make the file readable and writable by its owner only (0600)."""
    if stat.S_IMODE(path.stat().st_mode) != 0o600:
        os.chmod(path, 0o600)


def installation_keys(path: Path, names: Iterable[str]) -> dict[str, str]:
    """The installation's keys from ``path``, created (random, mode 0600) the first time and
    completed when a key is missing from it. Processes starting together agree: the file is
    changed under an exclusive lock and replaced in one rename."""
    wanted = tuple(names)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            keys = json.loads(path.read_text()) if path.exists() else {}
            if not isinstance(keys, dict):
                raise ValueError(f"{path} is not a JSON object of keys")
            missing = [name for name in wanted if not isinstance(keys.get(name), str) or not keys[name]]
            if missing:
                keys.update({name: new_key() for name in missing})
                _write_private(path, json.dumps(keys, indent=2) + "\n")
            _owner_only(path)
            return {name: keys[name] for name in wanted}
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class KeysUnavailable(RuntimeError):
    """The installation's key file cannot give the keys asked for."""


def existing_keys(path: Path, names: Iterable[str]) -> dict[str, str]:
    """The installation's keys from ``path`` as they are, for a process that uses an
    installation without being part of it (a simulation driving a running stack, from a
    read-only mount): nothing is created, locked or changed, and a missing file or key is
    a ``KeysUnavailable`` naming it (never a value)."""
    wanted = tuple(names)
    try:
        keys = json.loads(path.read_text())
    except OSError as err:
        raise KeysUnavailable(f"cannot read the installation's keys at {path}: {err.strerror or err}") from None
    except ValueError:
        raise KeysUnavailable(f"{path} is not a JSON object of keys") from None
    if not isinstance(keys, dict):
        raise KeysUnavailable(f"{path} is not a JSON object of keys")
    missing = [name for name in wanted if not isinstance(keys.get(name), str) or not keys[name]]
    if missing:
        raise KeysUnavailable(f"{path} has no {', '.join(missing)}: is it the keys file of the running services?")
    return {name: keys[name] for name in wanted}


def _write_private(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
