"""Every service is built the same way, from one ``ServiceSpec``:

- its context (``services/<name>/deps.py``): the stores, indexes and helpers its handlers
  use, made by ``Context.wire(runtime)``, which also registers its start-up hooks and
  background jobs;
- its consumers (``services/<name>/handlers.py``): each a ``Subscription``, one table
  ``{event model: handler}``; the topics it reads follow from the table;
- its routers (``services/<name>/api/``): thin, each route parses, calls a handler, answers.

So ``services/<name>/app.py`` is the same few lines in all four services::

    SERVICE = ServiceSpec("cards", Cards, CONSUMERS, api)

    def create(settings: Settings | None = None) -> FastAPI:
        return build_app(SERVICE, settings)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Generic, Protocol, Self, TypeVar

from fastapi import FastAPI

from .consumer import BatchHandler, ConsumerRunner, Handler
from .events import REGISTRY, CloudEvent, EventData
from .service import ServiceRuntime, create_app
from .settings import Settings, get_settings
from .topics import TOPICS, topic_for_service

C = TypeVar("C")
EventHandler = Callable[[C, CloudEvent], Awaitable[None]]
"""Applies one consumed event with the service's context; a refusal raises (dead letter)."""
EventBatchHandler = Callable[[C, list[CloudEvent]], Awaitable[list[Exception | None]]]
"""Applies a fetched batch at once (see ``shared.consumer.BatchHandler``)."""


class ServiceContext(Protocol):
    """What ``build_app`` asks of a service's context class."""

    @classmethod
    def configure(cls, settings: Settings | None) -> Settings:
        """The service's settings (its own class of them, if it has one)."""
        ...

    @classmethod
    def wire(cls, runtime: ServiceRuntime) -> Self:
        """The context on this runtime, with its hooks and background jobs registered."""
        ...


def configure(settings: Settings | None) -> Settings:
    """The settings of a service that reads only the common ones."""
    return settings or get_settings()


@dataclass(frozen=True)
class Subscription(Generic[C]):
    """One consumer group of a service: the events it applies, by model, each with its handler.

    Events of other types on the same topics are passed over. ``every_event`` sees every
    event of every topic, before its type's handler (the notifications' webhook log: an
    event is recorded for the subscriptions even if its own handler refuses it)."""

    handlers: Mapping[type[EventData], EventHandler[C]]
    batch: EventBatchHandler[C] | None = None
    every_event: EventHandler[C] | None = None
    group: str | None = None
    """The consumer group's name within the service's namespace (None: the service's own)."""
    max_poll_interval_ms: int | None = None
    """For a group whose one handler call may take long (the month end)."""

    def services(self) -> list[str]:
        """The services whose topics carry the events of the table (every topic for ``every_event``)."""
        if self.every_event is not None:
            return list(TOPICS)
        wanted = {model.event_type() for model in self.handlers}
        return [s for s in TOPICS if any(REGISTRY[t].service == s for t in wanted)]

    def event_types(self) -> list[str]:
        return sorted(model.event_type() for model in self.handlers)

    def handler(self, ctx: C) -> Handler:
        """One event at a time: ``every_event``, then the table's handler for its type, if any."""
        table = dict(self.handlers)
        every = self.every_event

        async def handle(event: CloudEvent) -> None:
            if every is not None:
                await every(ctx, event)
            own = table.get(type(event.data))
            if own is not None:
                await own(ctx, event)

        return handle

    def batch_handler(self, ctx: C) -> BatchHandler | None:
        if self.batch is None:
            return None
        batch = self.batch

        async def handle_batch(events: list[CloudEvent]) -> list[Exception | None]:
            return await batch(ctx, events)

        return handle_batch

    def runner(self, runtime: ServiceRuntime, ctx: C) -> ConsumerRunner:
        settings = runtime.settings
        extra: dict[str, Any] = {}
        if self.group is not None:
            extra["group_id"] = settings.group_id(self.group)
        if self.max_poll_interval_ms is not None:
            extra["max_poll_interval_ms"] = self.max_poll_interval_ms
        return ConsumerRunner(settings, service=runtime.name,
                              topics=[topic_for_service(s, settings.namespace) for s in self.services()],
                              handler=self.handler(ctx), batch_handler=self.batch_handler(ctx), **extra)


@dataclass(frozen=True)
class ServiceSpec:
    """A service: its name, its context class, its consumers, and its API module (which
    gives ``TITLE``, ``DESCRIPTION`` and ``ROUTERS``)."""

    name: str
    context: type[ServiceContext]
    consumers: Sequence[Subscription[Any]] = field(default_factory=list)
    api: ModuleType | None = None


def build_app(spec: ServiceSpec, settings: Settings | None = None) -> FastAPI:
    """The service's FastAPI app: runtime, context, consumers and routes, wired the one way."""
    runtime = ServiceRuntime(spec.name, spec.context.configure(settings))
    ctx = spec.context.wire(runtime)
    for subscription in spec.consumers:
        runtime.consumers.append(subscription.runner(runtime, ctx))
    api = spec.api
    app = create_app(runtime, title=getattr(api, "TITLE", spec.name), description=getattr(api, "DESCRIPTION", ""),
                     routers=list(getattr(api, "ROUTERS", [])))
    app.state.context = ctx
    revocations = getattr(ctx, "revocations", None)
    if revocations is not None:  # a service that keeps its own (identity: staff tokens too)
        app.state.revocations = revocations
    return app
