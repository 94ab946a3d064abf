"""Write or check the committed contract under ``contract/``.

    python -m medcard.contract          # write the files; refuses a breaking change
    python -m medcard.contract --check  # exit 1 when the files are stale or a change breaks

(``medcard.contract`` adds what only the layer above the services knows: which service
applies which events, from their handler tables.)

Files: ``schemas/<event type>.json`` (one per type; files of retired versions stay),
``asyncapi.yaml`` and ``asyncapi.json`` (the same document).

A published schema is never rewritten incompatibly, whatever the flags: a breaking
change raises the event's version, which makes a new type string and a new file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from .asyncapi import build_asyncapi
from .compat import check_contract
from .schemas import all_event_schemas

CONTRACT_DIR = Path(__file__).resolve().parents[2] / "contract"


def _json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings as literal blocks, so the descriptions stay readable, and
    repeats shared values instead of YAML anchors (``&id001``), which some readers reject."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def asyncapi_yaml(doc: dict[str, Any]) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


Consumers = Mapping[str, Iterable[str]]
"""Service -> the event types it applies (see ``build_asyncapi``)."""


def render(consumers: Consumers | None = None) -> dict[str, str]:
    """Every generated file's text, by path relative to the contract directory."""
    files = {f"schemas/{t}.json": _json(s) for t, s in all_event_schemas().items()}
    doc = build_asyncapi(consumers)
    files["asyncapi.json"] = _json(doc)
    files["asyncapi.yaml"] = asyncapi_yaml(doc)
    return files


def stale_files(directory: Path, consumers: Consumers | None = None) -> list[str]:
    """Generated files that are missing or differ on disk."""
    return [rel for rel, text in render(consumers).items()
            if not (directory / rel).is_file() or (directory / rel).read_text(encoding="utf-8") != text]


class BreakingChange(Exception):
    """Writing would change a published schema incompatibly."""


def breaking(directory: Path) -> list[str]:
    """Breaking changes of the models against the published schemas of ``directory``."""
    return check_contract(directory / "schemas", all_event_schemas())


def write(directory: Path, consumers: Consumers | None = None) -> list[str]:
    """Write the files that changed; return their relative paths. Raises
    :class:`BreakingChange`, writing nothing, when a change would break a consumer."""
    if breaks := breaking(directory):
        raise BreakingChange(breaks)
    changed = stale_files(directory, consumers)
    files = render(consumers)
    for rel in changed:
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[rel], encoding="utf-8")
    return changed


def main(argv: list[str] | None = None, consumers: Consumers | None = None,
         prog: str = "python -m medcard.contract") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=CONTRACT_DIR, help="contract directory (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="write nothing; fail if stale or breaking")
    args = parser.parse_args(argv)
    breaks = breaking(args.out)
    for line in breaks:
        print(f"BREAKING {line}", file=sys.stderr)
    if breaks:
        print("raise the event's version (a new type string) instead of changing it in place", file=sys.stderr)
        return 1
    if args.check:
        stale = stale_files(args.out, consumers)
        for rel in stale:
            print(f"STALE {rel}", file=sys.stderr)
        if stale:
            print(f"run: {prog}", file=sys.stderr)
        return 1 if stale else 0
    for rel in write(args.out, consumers):
        print(f"wrote {args.out / rel}")
    return 0
