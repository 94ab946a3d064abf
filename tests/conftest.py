"""Shared fixtures. Integration tests get the real Kafka broker and MongoDB-wire server
from tests/infra.py (env URLs, testcontainers, or the local stack), and a namespace of
their own so topics, consumer groups and databases never collide between tests."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from shared.kafka import delete_topics, ensure_topics
from shared.settings import Settings

pytest_plugins = ["tests.ci_policy", "pytester"]


@pytest.fixture(scope="session")
def infra() -> Iterator[object]:
    from tests.infra import provide_infra

    provided = provide_infra()
    try:
        yield provided
    finally:
        provided.teardown()


def make_settings(infra: object, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "test",
        "namespace": f"t{uuid.uuid4().hex[:10]}",
        "kafka_bootstrap": infra.kafka_bootstrap,  # type: ignore[attr-defined]
        "mongo_url": infra.mongo_url,  # type: ignore[attr-defined]
        "relay_poll_seconds": 0.2,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def settings(infra: object) -> AsyncIterator[Settings]:
    """Settings with a fresh namespace whose topics already exist."""
    s = make_settings(infra)
    await ensure_topics(s)
    yield s
    await forget_namespace(s)


async def forget_namespace(settings: Settings) -> None:
    """The test's topics and databases, deleted once it is over, so that a long-lived broker
    and database (a developer's stack, a whole CI run) hold only what is in use. Best effort:
    a test that left a server down has nothing to clean that a later start would load."""
    from pymongo import AsyncMongoClient

    with contextlib.suppress(Exception):
        await asyncio.wait_for(delete_topics(settings), 15)
    with contextlib.suppress(Exception):
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongo_url,
                                                                         serverSelectionTimeoutMS=3000)
        try:
            for name in await client.list_database_names():
                if name.startswith(f"{settings.namespace}_"):
                    await client.drop_database(name)
        finally:
            await client.close()
