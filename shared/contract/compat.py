"""Does a change to an event model break an existing consumer?

Compares the JSON Schema of each current payload model with the published schema of
the same event type: as committed on main and at HEAD, and as in the working tree
(:mod:`.published`), so a schema file rewritten in place cannot vouch for itself.
Breaking: a removed field, a retyped field (type, format, allowed values, item type,
nullability), a newly required field, and a type that disappeared (renamed or
removed). Raising the version makes a new type string: the old schema stays committed
as a retired version and nothing is compared against it. Adding an optional field is
not breaking (consumers ignore unknown fields).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .published import baselines
from .schemas import all_event_schemas

_TYPE = re.compile(r"^(?P<name>.+)\.v(?P<version>\d+)$")


def shape(schema: dict[str, Any]) -> dict[str, Any]:
    """What a reader depends on in a schema: types, formats, allowed values, structure."""
    out: dict[str, Any] = {}
    variants = schema.get("anyOf") or schema.get("oneOf")
    if variants:
        out["anyOf"] = sorted(json.dumps(shape(v), sort_keys=True) for v in variants)
    if "const" in schema:
        out["enum"] = [json.dumps(schema["const"])]
    if "enum" in schema:
        out["enum"] = sorted(json.dumps(v) for v in schema["enum"])
    for key in ("type", "format"):
        if key in schema:
            out[key] = schema[key]
    if "items" in schema:
        out["items"] = shape(schema["items"])
    if "properties" in schema:
        out["properties"] = {k: shape(v) for k, v in schema["properties"].items()}
        out["required"] = sorted(schema.get("required", []))
    return out


def _brief(s: dict[str, Any]) -> str:
    return json.dumps(shape(s), sort_keys=True, separators=(",", ":"))


def breaking_changes(event_type: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The changes from ``old`` to ``new`` that would break a consumer of ``event_type``."""
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    breaks = []
    for name, old_field in old_props.items():
        if name not in new_props:
            breaks.append(f"{event_type}: field {name!r} was removed")
        elif shape(old_field) != shape(new_props[name]):
            breaks.append(f"{event_type}: field {name!r} was retyped from {_brief(old_field)} "
                          f"to {_brief(new_props[name])}")
    for name in sorted(new_required - old_required):
        breaks.append(f"{event_type}: field {name!r} is newly required")
    return breaks


def _newer_version_exists(event_type: str, current: dict[str, Any]) -> bool:
    match = _TYPE.match(event_type)
    if not match:
        return False
    for other in current:
        m = _TYPE.match(other)
        if m and m["name"] == match["name"] and int(m["version"]) > int(match["version"]):
            return True
    return False


def compare_contract(committed: dict[str, dict[str, Any]], current: dict[str, dict[str, Any]]) -> list[str]:
    """Every breaking change from the committed schemas to the current ones (by type string)."""
    breaks = []
    for event_type in sorted(committed):
        if event_type in current:
            breaks += breaking_changes(event_type, committed[event_type], current[event_type])
        elif not _newer_version_exists(event_type, current):
            breaks.append(f"{event_type}: the type was renamed or removed without raising its version")
    return breaks


def check_contract(schemas_dir: Path, current: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Breaking changes of the current schemas (default: the event models') against every
    published baseline: main's and HEAD's committed files, and the working tree's."""
    current = all_event_schemas() if current is None else current
    where: dict[str, list[str]] = {}
    for baseline in baselines(schemas_dir):
        for line in compare_contract(baseline.schemas, current):
            where.setdefault(line, []).append(baseline.label)
    return [f"{line} (against {', '.join(labels)})" for line, labels in where.items()]
