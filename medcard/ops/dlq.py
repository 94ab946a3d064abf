"""Dead letters: what sits in each ``<topic>.dlq`` and why, one in full, and replay.

A replay republishes the original record (same key, value and headers, without the
``dlq_*`` ones) to its original topic and partition, with a ``dlq_replayed_from`` header
naming the dead letter. Each replay is also recorded in ``<dlq topic>.replayed`` (keyed by
``partition:offset``) so that the same dead letter is not replayed twice by accident.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from pydantic import BaseModel, Field

from shared.domain import Invalid, NotFound
from shared.kafka import idempotent_producer
from shared.settings import Settings
from shared.topics import RETENTION_FOREVER_MS, TOPICS

from .reader import Record, admin_client, read_to_end

DLQ_PREFIX = "dlq_"
REPLAYED_FROM = "dlq_replayed_from"


def dlq_topics(namespace: str, services: list[str] | None = None) -> list[str]:
    unknown = sorted(set(services or ()) - set(TOPICS))
    if unknown:
        raise Invalid(f"unknown service {', '.join(unknown)}; choose from {', '.join(TOPICS)}")
    return [TOPICS[s].dlq(namespace) for s in services or TOPICS]


def marker_topic(dlq_topic: str) -> str:
    return f"{dlq_topic}.replayed"


class DeadLetter(BaseModel):
    """One record of a dead-letter topic and what its headers say about it."""

    dlq_topic: str
    ref: str = Field(description="partition:offset in the dead-letter topic")
    time: str | None = Field(description="When it was dead-lettered")
    service: str | None = Field(description="The consumer that gave up on it")
    topic: str | None = Field(description="Original topic")
    partition: int | None = Field(description="Original partition")
    offset: int | None = Field(description="Original offset")
    type: str | None = Field(description="CloudEvents type, when the record had one")
    reason: str | None
    replayed: str | None = Field(None, description="When it was replayed, if it was")
    replay_of: str | None = Field(None, description="The dead letter this record was a replay of, if it was")


class DeadLetterDetail(DeadLetter):
    key: str | None
    headers: dict[str, str]
    value: Any = Field(description="The record value: JSON when it parses, text otherwise")


def _headers(record: Record) -> dict[str, str]:
    return {k: v.decode(errors="replace") for k, v in record.headers or ()}


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


def dead_letter(record: Record, replayed: dict[str, str]) -> DeadLetter:
    h = _headers(record)
    ref = f"{record.partition}:{record.offset}"
    return DeadLetter(
        dlq_topic=record.topic, ref=ref, time=h.get("dlq_time"), service=h.get("dlq_service"),
        topic=h.get("dlq_topic"), partition=_int(h.get("dlq_partition")), offset=_int(h.get("dlq_offset")),
        type=h.get("ce_type"), reason=h.get("dlq_reason"), replayed=replayed.get(ref), replay_of=h.get(REPLAYED_FROM),
    )


def detail(record: Record, replayed: dict[str, str]) -> DeadLetterDetail:
    raw = record.value or b""
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw.decode(errors="replace")
    return DeadLetterDetail(**dead_letter(record, replayed).model_dump(), headers=_headers(record),
                            key=record.key.decode(errors="replace") if record.key is not None else None, value=value)


async def _replayed(settings: Settings, dlq_topic: str) -> dict[str, str]:
    """ref -> when it was replayed, from the marker topic (empty if nothing was ever replayed)."""
    records = await read_to_end(settings, [marker_topic(dlq_topic)], missing_ok=True)
    return {r.key.decode(): json.loads(r.value or b"{}").get("replayed_at", "") for r in records if r.key}


async def dead_letters(settings: Settings, services: list[str] | None = None) -> list[DeadLetter]:
    """Every dead letter of the given services' topics (all when none given), oldest first."""
    found: list[DeadLetter] = []
    for topic in dlq_topics(settings.namespace, services):
        replayed = await _replayed(settings, topic)
        found += [dead_letter(r, replayed) for r in await read_to_end(settings, [topic], missing_ok=True)]
    return sorted(found, key=lambda d: (d.time or "", d.dlq_topic, d.ref))


def _check_topic(settings: Settings, dlq_topic: str) -> None:
    if dlq_topic not in dlq_topics(settings.namespace):
        choices = ", ".join(dlq_topics(settings.namespace))
        raise Invalid(f"{dlq_topic} is not a dead-letter topic; choose from {choices}")


def _pick(records: list[Record], dlq_topic: str, ref: str) -> Record:
    """The record named by ``partition:offset``, or by a bare offset when only one partition has it."""
    part, _, off = ref.rpartition(":")
    if not off.isdigit() or (part and not part.isdigit()):
        raise Invalid(f"a dead letter is named partition:offset (e.g. 2:15) or by its offset alone; got {ref!r}")
    hits = [r for r in records if r.offset == int(off) and (not part or r.partition == int(part))]
    if not hits:
        raise NotFound(f"no dead letter {ref} in {dlq_topic}")
    if len(hits) > 1:
        where = ", ".join(f"{r.partition}:{r.offset}" for r in hits)
        raise Invalid(f"offset {off} exists in several partitions of {dlq_topic} ({where}); "
                      "name one as partition:offset")
    return hits[0]


async def show(settings: Settings, dlq_topic: str, ref: str) -> DeadLetterDetail:
    """One dead letter in full: headers, key and value."""
    _check_topic(settings, dlq_topic)
    record = _pick(await read_to_end(settings, [dlq_topic]), dlq_topic, ref)
    return detail(record, await _replayed(settings, dlq_topic))


class ReplayReport(BaseModel):
    dlq_topic: str
    replayed: list[DeadLetter]
    skipped: dict[str, str] = Field(description="ref -> why it was not replayed")


async def _ensure_marker_topic(settings: Settings, dlq_topic: str) -> None:
    async with admin_client(settings) as admin:
        if marker_topic(dlq_topic) not in await admin.list_topics():
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(marker_topic(dlq_topic), 1, 1,
                                                    topic_configs={"retention.ms": str(RETENTION_FOREVER_MS)})])


async def replay(settings: Settings, dlq_topic: str, refs: list[str] | None, *, again: bool = False) -> ReplayReport:
    """Republish the chosen dead letters (all of them when ``refs`` is None) to their original
    topic; one already replayed is skipped unless ``again``."""
    _check_topic(settings, dlq_topic)
    records = await read_to_end(settings, [dlq_topic])
    chosen = records if refs is None else [_pick(records, dlq_topic, ref) for ref in refs]
    replayed = await _replayed(settings, dlq_topic)
    report = ReplayReport(dlq_topic=dlq_topic, replayed=[], skipped={})
    todo = []
    for record in chosen:
        letter = dead_letter(record, replayed)
        if letter.topic is None or letter.partition is None:
            report.skipped[letter.ref] = "no dlq_topic/dlq_partition header: not a dead letter of this project"
        elif letter.replayed and not again:
            report.skipped[letter.ref] = f"already replayed at {letter.replayed}"
        else:
            todo.append((record, letter))
    if not todo:
        return report
    await _ensure_marker_topic(settings, dlq_topic)
    producer = idempotent_producer(settings, client_id=f"{settings.namespace}-ops-replay")
    await producer.start()
    try:
        for record, letter in todo:
            headers = [(k, v) for k, v in record.headers or () if not k.startswith(DLQ_PREFIX)]
            headers.append((REPLAYED_FROM, f"{dlq_topic}:{letter.ref}".encode()))
            assert letter.topic is not None
            await producer.send_and_wait(letter.topic, record.value, key=record.key, headers=headers,
                                         partition=letter.partition)
            now = datetime.now(UTC).isoformat()
            await producer.send_and_wait(marker_topic(dlq_topic), json.dumps(
                {"replayed_at": now, "topic": letter.topic, "partition": letter.partition, "offset": letter.offset},
            ).encode(), key=letter.ref.encode())
            report.replayed.append(letter.model_copy(update={"replayed": now}))
    finally:
        await producer.stop()
    return report
