"""The Compose Specification's JSON Schema, as Docker Compose itself validates with it,
fetched once and cached for offline runs.

It is ``schema/compose-spec.json`` of the Go module ``github.com/compose-spec/compose-go/v2``
(Apache-2.0), the library ``docker compose`` loads files with, taken from the Go module
proxy at a pinned version and checked by its SHA-256. The schema and the module's LICENSE
are kept under ``~/.cache/medcard/compose-spec-<version>/`` (``MEDCARD_CACHE_DIR`` or
``XDG_CACHE_HOME`` move it); later calls, offline ones too, read the cache. Nothing is
copied into the repository.

    python -m tests.compose_spec    # fetch it now (e.g. before going offline)
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from medcard.stack.local import default_cache_dir
from tests.pinned_files import SpecUnavailable, download, keep

VERSION = "v2.16.2"
MODULE_ZIP = f"https://proxy.golang.org/github.com/compose-spec/compose-go/v2/@v/{VERSION}.zip"
PREFIX = f"github.com/compose-spec/compose-go/v2@{VERSION}/"
SCHEMA_SHA256 = "f266dcbb043229405d7cedd5aec918f9102c2b3d5e3850808fdd8edd564a43ff"
MEMBERS = {"LICENSE": "LICENSE", "schema/compose-spec.json": "compose-spec.json"}
"""Extracted in this order: the schema last, since its presence means the cache is complete."""


def cached_path() -> Path:
    return default_cache_dir() / f"compose-spec-{VERSION}" / "compose-spec.json"


def _fetch(directory: Path) -> None:
    data = download(MODULE_ZIP, cached_path(), "run `python -m tests.compose_spec` once with access to proxy.golang.org")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as err:
        raise SpecUnavailable(f"{MODULE_ZIP} is not a zip archive ({err})") from None
    files = {name: archive.read(PREFIX + member) for member, name in MEMBERS.items()}
    digest = hashlib.sha256(files["compose-spec.json"]).hexdigest()
    if digest != SCHEMA_SHA256:
        raise SpecUnavailable(f"compose-spec.json of {MODULE_ZIP} has SHA-256 {digest}, not {SCHEMA_SHA256}")
    keep(directory, files)


def compose_schema() -> dict[str, Any]:
    """The Compose Specification's JSON Schema (from the cache, fetched first if needed)."""
    path = cached_path()
    if not path.is_file():
        _fetch(path.parent)
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


if __name__ == "__main__":
    compose_schema()
    print(cached_path())
