"""``medcard stack prune``: drop what finished runs left on the local stack.

Every simulation, benchmark and test run works in a namespace of its own (its databases are
``<namespace>_<service>``, its topics ``<namespace>.<service>`` and ``<namespace>.<service>.dlq``)
and leaves it behind, so that its events and projections can be read afterwards. On a
developer's stack they pile up (gigabytes after a few days of runs). Prune drops them all
except the stack's own namespace, those asked to be kept, and those of a resumable simulation
(any ``progress.json`` under the state folder names its namespace).

``plan`` is pure (names in, names out, unit-tested); ``PrunePlan.apply`` does the dropping.
Databases and topics whose names are not a namespace's are never touched (a database
``<namespace>_<anything>`` is the namespace's when the namespace is found by a service's
database or topic). Consumer groups
are left: aiokafka cannot delete them, and Kafka forgets a group's offsets by itself
(``offsets.retention.minutes``) once its topics are gone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.topics import TOPICS

SERVICES = ("identity", "cards", "bank", "notifications")
OWNERS = (*SERVICES, "benchbase")
"""What follows ``<namespace>_`` in the name of a namespace's database: a service's, or the
bench's own baselines (``medcard bench``)."""


def namespace_of_database(name: str) -> str | None:
    """``sim7xab12cd_bank`` -> ``sim7xab12cd``; None for a database that is no service's."""
    for owner in OWNERS:
        suffix = f"_{owner}"
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def namespace_of_topic(name: str) -> str | None:
    """``sim7xab12cd.clock.dlq`` -> ``sim7xab12cd``; None for a topic that is no registry topic."""
    base = name.removesuffix(".dlq")
    namespace, dot, service = base.rpartition(".")
    return namespace if dot and namespace and service in TOPICS else None


@dataclass
class Leftovers:
    databases: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)


@dataclass
class PrunePlan:
    drop: dict[str, Leftovers]
    """Namespace -> its databases and topics, sorted by namespace."""
    kept: list[str]
    """Namespaces found and kept."""

    @property
    def databases(self) -> list[str]:
        return [db for left in self.drop.values() for db in left.databases]

    @property
    def topics(self) -> list[str]:
        return [t for left in self.drop.values() for t in left.topics]

    async def apply(self, mongo_url: str, kafka_bootstrap: str) -> None:
        """Drop the planned databases, then delete the planned topics."""
        from aiokafka.admin import AIOKafkaAdminClient
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, serverSelectionTimeoutMS=10_000)
        try:
            for name in self.databases:
                await client.drop_database(name)
        finally:
            await client.close()
        if not self.topics:
            return
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=60_000)
        await admin.start()
        try:
            topics = self.topics
            for i in range(0, len(topics), 100):  # one request per hundred topics
                await admin.delete_topics(topics[i:i + 100])
        finally:
            await admin.close()


def plan(databases: Iterable[str], topics: Iterable[str], keep: Iterable[str]) -> PrunePlan:
    """What to drop: every namespace's databases and topics but those of ``keep``."""
    keep = set(keep)
    found: dict[str, Leftovers] = {}
    for name in databases:
        if (ns := namespace_of_database(name)) is not None:
            found.setdefault(ns, Leftovers()).databases.append(name)
    for name in topics:
        if (ns := namespace_of_topic(name)) is not None:
            found.setdefault(ns, Leftovers()).topics.append(name)
    for name in databases:  # a namespace's other databases (a projection rebuilt apart, ...)
        if namespace_of_database(name) is None:
            owner = next((ns for ns in found if name.startswith(f"{ns}_")), None)
            if owner is not None:
                found[owner].databases.append(name)
    drop = {ns: Leftovers(sorted(left.databases), sorted(left.topics))
            for ns, left in sorted(found.items()) if ns not in keep}
    return PrunePlan(drop=drop, kept=sorted(ns for ns in found if ns in keep))


def resumable_namespaces(root: Path) -> set[str]:
    """The namespaces of the simulations that can still be resumed: every ``progress.json``
    under ``root`` (unreadable ones are skipped)."""
    found = set()
    for path in root.rglob("progress.json"):
        try:
            namespace = json.loads(path.read_text()).get("namespace")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(namespace, str) and namespace:
            found.add(namespace)
    return found


def running_namespaces(proc: Path = Path("/proc")) -> set[str]:
    """The namespaces of the services running on this machine (``MEDCARD_NAMESPACE`` in the
    environment of any process this user can read): a simulation still setting up has no
    progress file yet, and a stack's services may run under any namespace. Best effort:
    empty where there is no ``/proc``."""
    found = set()
    for environ in proc.glob("[0-9]*/environ"):
        try:
            entries = environ.read_bytes().split(b"\0")
        except OSError:
            continue
        for entry in entries:
            if entry.startswith(b"MEDCARD_NAMESPACE="):
                found.add(entry.split(b"=", 1)[1].decode(errors="replace"))
    return found - {""}


async def current_names(mongo_url: str, kafka_bootstrap: str) -> tuple[list[str], list[str]]:
    """The stack's database names and topic names."""
    from aiokafka.admin import AIOKafkaAdminClient
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, serverSelectionTimeoutMS=10_000)
    try:
        databases = await client.list_database_names()
    finally:
        await client.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        topics = await admin.list_topics()
    finally:
        await admin.close()
    return databases, list(topics)
