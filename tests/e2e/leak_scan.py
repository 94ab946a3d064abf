"""Looking for secrets where they must not be: raw ID numbers, passwords and PINs in the
records of every topic, in the services' logs and in their databases.

How a secret is recognised: a password or an ID number anywhere as a substring (an ID
number also with a lower-case x); a PIN, six digits, only as a whole quoted string or a
whole value (six-digit runs occur by chance in amounts, timestamps and card numbers; a
leaked PIN travels as a string). A field named like a secret (``pin``, ``password``...) is
a finding whatever its value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition
from pymongo import AsyncMongoClient

from medcard.simulate.client import SENSITIVE
from shared.settings import Settings
from shared.topic_reader import records_to_end, topic_reader
from shared.topics import TOPICS

PIN = re.compile(r"^\d{6}$")
ARGON2 = re.compile(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=\d+\$")


@dataclass(frozen=True)
class Secrets:
    pins: frozenset[str]
    others: frozenset[str]
    """Passwords and ID numbers."""

    @classmethod
    def of(cls, typed: Iterable[str]) -> Secrets:
        values = set(typed)
        pins = {v for v in values if PIN.match(v)}
        others = values - pins
        others |= {v.lower() for v in others}
        return cls(frozenset(pins), frozenset(others))

    def in_text(self, text: str) -> list[str]:
        found = [s for s in self.others if s in text]
        for quote in ('"', "'"):
            found += [p for p in self.pins if f"{quote}{p}{quote}" in text]
        return found

    def in_value(self, value: str) -> list[str]:
        return [value] if value in self.pins else self.in_text(value)


def leaves(doc: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every leaf of a JSON-like document; keys are leaves' paths."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from leaves(v, f"{path}[{i}]")
    else:
        yield path, doc


def secret_named(path: str) -> bool:
    """A field named like a secret: ``pin``, ``old_pin``, ``password``, ``id_number`` (not a hash or a mask)."""
    last = re.split(r"[.\[]", path)[-1]
    return last in SENSITIVE


def scan_document(doc: Any, secrets: Secrets, where: str) -> list[str]:
    found = []
    for path, value in leaves(doc):
        if secret_named(path):
            found.append(f"{where}: a field named {path}")
        if hits := secrets.in_text(path):
            found.append(f"{where}: in the field name {path}: {sorted(hits)[:3]}")
        if isinstance(value, str) and (hits := secrets.in_value(value)):
            found.append(f"{where} {path}: {sorted(hits)[:3]}")
    return found


async def topic_records(kafka: str, namespace: str) -> list[Any]:
    """Every record of every topic of the namespace, dead-letter topics included."""
    parts = [TopicPartition(name, p) for t in TOPICS.values()
             for name in (t.name(namespace), t.dlq(namespace)) for p in range(t.partitions)]
    settings = Settings(namespace=namespace, kafka_bootstrap=kafka)
    async with topic_reader(settings, "leak-scan", max_partition_fetch_bytes=8 * 1024 * 1024) as consumer:
        return await records_to_end(consumer, parts)


def scan_records(records: list[Any], secrets: Secrets) -> list[str]:
    found = []
    for r in records:
        where = f"{r.topic}@{r.partition}:{r.offset}"
        found += [f"{where} key: {h}" for h in secrets.in_value((r.key or b"").decode(errors="replace"))]
        for name, value in r.headers or ():
            found += [f"{where} header {name}: {h}" for h in secrets.in_value(value.decode(errors="replace"))]
        text = (r.value or b"").decode(errors="replace")
        try:
            found += scan_document(json.loads(text), secrets, where)
        except ValueError:
            found += [f"{where} value: {h}" for h in secrets.in_text(text)]
    return found


def scan_logs(files: list[Path], secrets: Secrets) -> list[str]:
    found = []
    for path in files:
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            where = f"{path.name}:{n}"
            try:
                found += scan_document(json.loads(line), secrets, where)
            except ValueError:
                found += [f"{where}: {h}" for h in secrets.in_text(line)]
    return found


async def stored_documents(mongo_url: str, databases: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every document of the given databases, by ``database.collection``."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        out: dict[str, list[dict[str, Any]]] = {}
        for name in databases:
            db = client[name]
            for coll in await db.list_collection_names():
                out[f"{name}.{coll}"] = await db[coll].find({}).to_list()
        return out
    finally:
        await client.close()


def scan_stored(docs: dict[str, list[dict[str, Any]]], secrets: Secrets) -> list[str]:
    found = []
    for coll, items in docs.items():
        for doc in items:
            found += scan_document(json.loads(json.dumps(doc, default=str)), secrets, f"{coll}/{doc['_id']}")
    return found


def hashes(docs: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str]]:
    """(where, value) of every stored field whose name ends in ``_hash``."""
    return [(f"{coll}/{doc['_id']} {path}", value) for coll, items in docs.items() for doc in items
            for path, value in leaves(json.loads(json.dumps(doc, default=str)))
            if path.rsplit(".", 1)[-1].endswith("_hash") and value is not None]
