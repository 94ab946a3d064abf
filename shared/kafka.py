"""Kafka plumbing: the idempotent producer and topic creation."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from .settings import Settings
from .topics import TOPICS

TRANSIENT_KAFKA_ERRORS: tuple[type[BaseException], ...] = (KafkaError, KafkaConnectionError, OSError, TimeoutError)


def idempotent_producer(settings: Settings, **overrides: object) -> AIOKafkaProducer:
    """acks=all, idempotence on: a retried send is never written twice. No linger: a relay
    pass hands a whole batch to the producer before it sends (records batch up anyway),
    and a lone event (a loss report) goes out at once."""
    options: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 0,
        "request_timeout_ms": 10_000,
        "max_batch_size": 256 * 1024,
        "client_id": f"{settings.namespace}-producer",
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout: float = 30.0) -> None:
    """New partitions answer NotLeader for a moment; wait until each has a leader."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        described = await admin.describe_topics(names)
        if all(
            t.get("error_code", 0) == 0 and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
            for t in described
        ):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"topics without leaders after {timeout}s: {names}")
        await asyncio.sleep(0.1)


async def ensure_topics(settings: Settings) -> list[str]:
    """Create every topic of the registry and its dead-letter topic; return those created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = []
        for topic in TOPICS.values():
            config = {"retention.ms": str(topic.retention_ms)}
            for name in (topic.name(settings.namespace), topic.dlq(settings.namespace)):
                if name not in existing:
                    wanted.append(NewTopic(name, topic.partitions, 1, topic_configs=config))
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process was quicker
                await admin.create_topics(wanted)
            await _wait_for_leaders(admin, [t.name for t in wanted])
        return [t.name for t in wanted]
    finally:
        await admin.close()


async def delete_topics(settings: Settings) -> None:
    """Delete every topic of the namespace and its dead-letter topic (a finished test's or
    run's): a broker that lives for weeks keeps only the namespaces in use, not thousands of
    partitions it must load at each start and hold in its heap."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        names = [n for t in TOPICS.values() for n in (t.name(settings.namespace), t.dlq(settings.namespace))
                 if n in existing]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()

