"""The official AsyncAPI 3.0.0 JSON Schema, fetched once and cached for offline runs.

It is ``schemas/3.0.0.json`` of the npm package ``@asyncapi/specs`` (Apache-2.0,
https://github.com/asyncapi/spec-json-schemas), a single bundled file (JSON Schema
draft-07). The first call downloads the pinned package from the npm registry, checks
its published sha512 integrity and keeps the schema and the package's LICENSE under
``~/.cache/medcard/asyncapi-specs-<version>/`` (``MEDCARD_CACHE_DIR`` or
``XDG_CACHE_HOME`` move it); later calls, offline ones too, read the cache. Nothing is
copied into the repository.

    python -m tests.asyncapi_spec    # fetch it now (e.g. before going offline)
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from medcard.stack.local import default_cache_dir
from tests.pinned_files import SpecUnavailable, download, keep

SPECS_VERSION = "6.11.1"
TARBALL = f"https://registry.npmjs.org/@asyncapi/specs/-/specs-{SPECS_VERSION}.tgz"
INTEGRITY = "sha512-A3WBLqAKGoJ2+6FWFtpjBlCQ1oFCcs4GxF7zsIGvNqp/klGUHjlA3aAcZ9XMMpLGE8zPeYDz2x9FmO6DSuKraQ=="
"""``dist.integrity`` of the version in the npm registry."""
MEMBERS = {"package/LICENSE": "LICENSE", "package/schemas/3.0.0.json": "3.0.0.json"}
"""Extracted in this order: the schema last, since its presence means the cache is complete."""


def cached_path() -> Path:
    return default_cache_dir() / f"asyncapi-specs-{SPECS_VERSION}" / "3.0.0.json"


def _fetch(directory: Path) -> None:
    tarball = download(TARBALL, cached_path(), "run `python -m tests.asyncapi_spec` once with access to "
                                               "registry.npmjs.org")
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    if digest != INTEGRITY:
        raise SpecUnavailable(f"{TARBALL} does not match its registry integrity {INTEGRITY} (got {digest})")
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        files = {}
        for member, name in MEMBERS.items():
            source = archive.extractfile(member)
            assert source is not None, member
            files[name] = source.read()
    keep(directory, files)


def asyncapi_3_schema() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 JSON Schema (from the cache, fetched first if needed)."""
    path = cached_path()
    if not path.is_file():
        _fetch(path.parent)
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


if __name__ == "__main__":
    asyncapi_3_schema()
    print(cached_path())
