"""Counts every database command a service sends, by command, collection and filter shape.

Exposed on ``/metrics`` as ``medcard_db_commands_total`` and ``medcard_db_command_seconds_total``:
an operator sees which queries a service runs and what they cost, and a full scan on a hot
path (a filter shape without an index) shows up at once. The shape is the sorted top-level
keys of the filter, never its values, so no personal data reaches the metrics.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

from pymongo import monitoring

_FILTER_KEYS = {"find": "filter", "count": "query", "distinct": "query", "findAndModify": "query"}
_STATEMENT_LISTS = {"update": ("updates", "q"), "delete": ("deletes", "q")}


def shape_of(command_name: str, command: Any) -> str:
    """The sorted top-level filter keys of a command (``-`` when it has no filter)."""
    try:
        if command_name in _FILTER_KEYS:
            flt = command.get(_FILTER_KEYS[command_name]) or {}
        elif command_name in _STATEMENT_LISTS:
            field, key = _STATEMENT_LISTS[command_name]
            statements = command.get(field) or [{}]
            flt = statements[0].get(key) or {}
        elif command_name == "aggregate":
            first = (command.get("pipeline") or [{}])[0]
            flt = first.get("$match", {}) if isinstance(first, dict) else {}
        else:
            return "-"
        return ",".join(sorted(flt)) or "-"
    except (AttributeError, TypeError, IndexError):
        return "?"


class DbCommandStats(monitoring.CommandListener):
    """A pymongo command listener keeping counts and total seconds per (command, collection, shape)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[tuple[Any, int], tuple[str, str, str, float]] = {}
        self.counts: dict[tuple[str, str, str], int] = defaultdict(int)
        self.seconds: dict[tuple[str, str, str], float] = defaultdict(float)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        collection = event.command.get(name) if name != "getMore" else event.command.get("collection")
        key = (name, str(collection) if isinstance(collection, str) else "-", shape_of(name, event.command))
        with self._lock:
            self._started[(event.connection_id, event.request_id)] = (*key, time.perf_counter())

    def _finish(self, event: monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent) -> None:
        with self._lock:
            began = self._started.pop((event.connection_id, event.request_id), None)
            if began is None:
                return
            key = began[:3]
            self.counts[key] += 1
            self.seconds[key] += event.duration_micros / 1e6

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._finish(event)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._finish(event)

    def snapshot(self) -> list[tuple[tuple[str, str, str], int, float]]:
        with self._lock:
            return [(key, n, self.seconds[key]) for key, n in self.counts.items()]
