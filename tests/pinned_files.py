"""Pinned public files the tests check against (the AsyncAPI and Compose JSON Schemas):
downloaded once, checked by their digest by the caller, kept under ``~/.cache/medcard``."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path


class SpecUnavailable(RuntimeError):
    """A schema is not cached and could not be fetched."""


def download(url: str, missing: Path, hint: str) -> bytes:
    """The bytes at ``url``; SpecUnavailable naming the cache file ``missing`` and ``hint``."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return bytes(response.read())
    except OSError as err:
        raise SpecUnavailable(f"{missing} is not cached and {url} could not be fetched ({err}); {hint}") from None


def keep(directory: Path, files: dict[str, bytes]) -> None:
    """Write each file whole (a partial one is never seen), in order: the last one's presence
    means the cache is complete."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        partial = directory / f".{name}.{os.getpid()}"
        partial.write_bytes(data)
        partial.replace(directory / name)
