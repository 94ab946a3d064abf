"""The I/O side of one service: its database, outbox relay, consumers, start-up hooks and
background jobs, started and stopped with the app (``shared/service.create_app``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import date
from typing import Any, TypeVar

from pydantic import BaseModel
from pymongo import AsyncMongoClient

from .bounded import cancel_and_wait, within
from .consumer import BatchHandler, ConsumerRunner, Handler
from .database import mongo_client
from .dbstats import DbCommandStats
from .kafka import ensure_topics
from .logging import get_logger
from .outbox import AggregateStore
from .relay import OutboxRelay
from .settings import Settings, get_settings
from .topics import topic_for_service

S = TypeVar("S", bound=BaseModel)
log = get_logger("service")


class ServiceRuntime:
    """The I/O side of one service: wired once, used by its routes and consumers."""

    def __init__(self, name: str, settings: Settings | None = None) -> None:
        self.name = name
        self.settings = settings or get_settings()
        self.db_stats = DbCommandStats()
        self.mongo: AsyncMongoClient[dict[str, Any]] = mongo_client(
            self.settings.mongo_url, event_listeners=[self.db_stats])
        self.db = self.mongo[self.settings.database(name)]
        self.relay = OutboxRelay(self.settings, [], name=name)
        self.consumers: list[ConsumerRunner] = []
        self.stores: list[AggregateStore[Any]] = []
        self.setup_hooks: list[Callable[[], Awaitable[None]]] = []
        self.background: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self.stop_hooks: list[Callable[[], Awaitable[None]]] = []
        """Run at a stop, after the consumers and before the relay and the database close."""
        self.bootstrapped = asyncio.Event()
        self.business_date: Callable[[], Awaitable[date]] | None = None
        """The business date the service dates its commands with (told by ``/ready``)."""
        self._tasks: list[asyncio.Task[Any]] = []

    def store(self, collection: str, state_type: type[S]) -> AggregateStore[S]:
        """An aggregate collection whose outbox the relay publishes."""
        coll = self.db[collection]
        store = AggregateStore(coll, service=self.name, state_type=state_type, on_saved=self.relay.notify)
        self.relay.collections.append(coll)
        self.stores.append(store)
        return store

    def consume(self, services: list[str], handler: Handler,
                batch_handler: BatchHandler | None = None) -> ConsumerRunner:
        """Consume the topics of the given services with this service's consumer group."""
        runner = ConsumerRunner(
            self.settings, service=self.name,
            topics=[topic_for_service(s, self.settings.namespace) for s in services], handler=handler,
            batch_handler=batch_handler,
        )
        self.consumers.append(runner)
        return runner

    async def _bootstrap(self) -> None:
        """Indexes and topics, retried until the servers answer; then start the workers."""
        delay = 0.2
        while True:
            try:
                for store in self.stores:
                    await store.create_indexes()
                for hook in self.setup_hooks:
                    await hook()
                await ensure_topics(self.settings)
                break
            except Exception as err:  # servers not up yet: keep trying
                log.warning("bootstrap.retry", error=repr(err), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.relay.start()
        for runner in self.consumers:
            runner.start()
        for job in self.background:
            self._tasks.append(asyncio.create_task(job()))
        self.bootstrapped.set()
        log.info("service.started", consumers=len(self.consumers))

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._bootstrap(), name=f"bootstrap-{self.name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            if not await cancel_and_wait(task, 10.0):
                log.error("service.task_would_not_stop", task=task.get_name())
        await asyncio.gather(*(runner.stop() for runner in self.consumers))
        for hook in self.stop_hooks:
            await hook()
        await self.relay.stop()
        await self.mongo.close()
        log.info("service.stopped")

    async def readiness(self) -> dict[str, Any]:
        checks: dict[str, Any] = {"bootstrapped": self.bootstrapped.is_set()}
        try:
            await within(self.db.command("ping"), 2.0, "database ping")
            checks["database"] = True
        except Exception:
            checks["database"] = False
        checks["kafka"] = self.relay.kafka_ok and all(c.running for c in self.consumers)
        checks["ready"] = all(checks.values())
        if self.business_date is not None:
            checks["business_date"] = await self._business_date() if checks["database"] else None
        return checks

    async def _business_date(self) -> str | None:
        """The service's business date, ISO; None when its database does not answer."""
        assert self.business_date is not None
        try:
            return (await within(self.business_date(), 1.0, "reading the business date")).isoformat()
        except Exception:
            return None
