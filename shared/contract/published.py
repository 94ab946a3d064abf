"""The published schemas a change is checked against: what git has committed, not only
what the working tree holds (a file rewritten in place would otherwise vouch for itself).

Baselines, each a ``{event type: schema}`` map: the schema directory at the merge base
of HEAD with ``main`` (what is published for everyone), at HEAD (what this branch has
committed), and in the working tree (what was generated since). Without git, or outside
a repository, only the working tree.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAIN_REFS = ("main", "origin/main")
"""Where the published contract lives, tried in this order."""

Schemas = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Baseline:
    label: str
    schemas: Schemas


def load_directory(schemas_dir: Path) -> Schemas:
    """The schema files of a directory, by event type (the file name without ``.json``)."""
    return {p.name.removesuffix(".json"): json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(schemas_dir.glob("*.json"))}


def _git(cwd: Path, *args: str, stdin: bytes | None = None) -> bytes | None:
    """``git args`` in ``cwd``; None when git is missing or the command fails."""
    try:
        done = subprocess.run(["git", "-C", str(cwd), *args], input=stdin, capture_output=True,
                              timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _revision(cwd: Path, *args: str) -> str | None:
    out = _git(cwd, *args)
    return (out.decode().strip() or None) if out else None


def load_revision(schemas_dir: Path, revision: str) -> Schemas | None:
    """The schema files of ``schemas_dir`` as committed at ``revision``; None without git."""
    top = _revision(schemas_dir, "rev-parse", "--show-toplevel") if schemas_dir.is_dir() else None
    if top is None:
        return None
    root = Path(top)
    relative = schemas_dir.resolve().relative_to(root.resolve()).as_posix()
    listing = _git(root, "ls-tree", "-z", revision, "--", f"{relative}/")
    if listing is None:
        return None
    blobs: dict[str, str] = {}
    for entry in filter(None, listing.decode().split("\0")):
        meta, path = entry.split("\t", 1)
        name = path.rsplit("/", 1)[-1]
        if meta.split()[1] == "blob" and name.endswith(".json"):
            blobs[name.removesuffix(".json")] = meta.split()[2]
    if not blobs:
        return {}
    out = _git(root, "cat-file", "--batch", stdin="".join(f"{b}\n" for b in blobs.values()).encode())
    if out is None:
        return None
    texts, pos = [], 0
    for _ in blobs:
        header_end = out.index(b"\n", pos)
        size = int(out[pos:header_end].split()[2])
        texts.append(out[header_end + 1:header_end + 1 + size])
        pos = header_end + 1 + size + 1
    return {event_type: json.loads(text) for event_type, text in zip(blobs, texts, strict=True)}


def baselines(schemas_dir: Path) -> list[Baseline]:
    """The merge base with main and HEAD (when git knows them), then the working tree."""
    found: list[Baseline] = []
    head = _revision(schemas_dir, "rev-parse", "--verify", "--quiet", "HEAD^{commit}") if schemas_dir.is_dir() else None
    if head:
        base = next((b for ref in MAIN_REFS if (b := _revision(schemas_dir, "merge-base", "HEAD", ref))), None)
        revisions = {base: f"main (merge base {base[:12]})"} if base and base != head else {}
        revisions[head] = "HEAD"
        for revision, label in revisions.items():
            if (schemas := load_revision(schemas_dir, revision)) is not None:
                found.append(Baseline(label, schemas))
    found.append(Baseline("the working tree", load_directory(schemas_dir) if schemas_dir.is_dir() else {}))
    return found
