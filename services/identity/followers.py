"""Waiting, after a clock advance, until every service has applied the new business date.

Each service applies the clock topic in one consumer group (``shared.clock.CLOCK_GROUPS``)
and commits its offset only after the date is stored. So once the advance's days are on the
clock topic, a group whose committed offset on its one partition has reached the
partition's end has applied them: that service dates every later command with the new day.
Identity reads those offsets with the Kafka admin API (it never reads another service's
database), for a bounded time; the advance then answers, naming the services still behind.
A service whose group has no consumer (stopped, or not deployed) is not waited for: it is
named behind at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from shared.bounded import within
from shared.clock import CLOCK_GROUPS
from shared.kafka import TRANSIENT_KAFKA_ERRORS
from shared.logging import get_logger
from shared.settings import Settings
from shared.topics import topic_for_service

log = get_logger("identity.followers")
POLL_SECONDS = 0.02
"""Between two looks at the outbox or at the groups' offsets."""
CLOSE_SECONDS = 10.0


@dataclass
class _Look:
    """How far one wait has seen the groups apply the advance."""

    behind: list[str]
    deadline: float
    """The event loop's time when the wait ends."""
    connected: bool = False


def _consumed(task: asyncio.Future[None]) -> None:
    """A look left at its bound may end later in an error: it is not news."""
    if not task.cancelled():
        task.exception()


def services_behind(committed: Mapping[str, int | None], end: int) -> list[str]:
    """The services (sorted) whose clock group has not committed up to ``end``, the end offset
    of the clock partition once the advance was published (None: never committed)."""
    return sorted(service for service, offset in committed.items() if (offset or 0) < end)


class ClockFollowers:
    """The consumer groups that follow the business clock, and how far each has applied it.
    Its two Kafka clients (admin, and a group-less consumer for the end offset) are made at
    the first use and kept; a failed or cut-off look closes them and the next one starts anew."""

    def __init__(self, settings: Settings, groups: Mapping[str, str] = CLOCK_GROUPS) -> None:
        self.settings = settings
        self.groups = {service: settings.group_id(name) for service, name in groups.items()}
        self.partition = TopicPartition(topic_for_service("clock", settings.namespace), 0)
        self._admin: AIOKafkaAdminClient | None = None
        self._ends: AIOKafkaConsumer | None = None
        self._closing: set[asyncio.Task[None]] = set()

    async def wait(self, published: Callable[[], Awaitable[bool]], seconds: float) -> list[str]:
        """Wait at most ``seconds`` until ``published()`` is true (the advance's events are on
        the clock topic) and every group with a consumer has committed up to the partition's
        end. Returns the services behind then (every one when the events were not yet
        published or Kafka did not answer); empty when all have applied the new date.

        The look runs as a task of its own and is left (cancelled) at the bound, and it checks
        the time itself: pymongo (4.20, on Python 3.11) swallows a cancellation that reaches a
        ``find_one`` now and then (measured here: 459 of 2,816 timeouts that expired during one
        returned its document as if none had), so ``asyncio.timeout`` around the polling loop
        could not end it. A clock advance during a broker outage then got no answer until
        the broker was back (60 s and more: the fault suite's simulation, 3 of 4 runs)."""
        look = _Look(sorted(self.groups), asyncio.get_running_loop().time() + seconds)
        task = asyncio.ensure_future(self._look(published, look))
        task.add_done_callback(_consumed)  # also when this wait is itself cancelled (the request was)
        done, _ = await asyncio.wait({task}, timeout=seconds)
        if not done:
            task.cancel()  # if swallowed, the look still ends: its deadline has passed
        error = None if not done or task.cancelled() else task.exception()
        if error is not None:  # the clock has moved: the answer must still come, naming them all
            transient = isinstance(error, TRANSIENT_KAFKA_ERRORS)
            (log.warning if transient else log.error)("identity.clock_followers_unknown", error=repr(error),
                                                      behind=look.behind)
        elif look.behind:
            log.warning("identity.clock_followers_behind", behind=look.behind, waited_seconds=seconds)
        if error is not None or (look.behind and not look.connected) or not done:
            self._close_later()  # a failed look, or one cut off while connecting: start afresh next time
        return look.behind

    async def _look(self, published: Callable[[], Awaitable[bool]], look: _Look) -> None:
        """Follow the advance until every running group has applied it, or ``look.deadline``."""
        clock = asyncio.get_running_loop().time
        while not await published():
            if clock() >= look.deadline:
                return
            await asyncio.sleep(POLL_SECONDS)
        admin, ends = await self._clients()
        look.connected = True
        end = (await ends.end_offsets([self.partition]))[self.partition]
        while (behind := services_behind(await self._committed(admin), end)) and await self._running(admin, behind):
            look.behind = behind
            if clock() >= look.deadline:
                return
            await asyncio.sleep(POLL_SECONDS)
        look.behind = behind

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._ends is None:
            await self.close()
            admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap,
                                        client_id=f"{self.settings.group_id('identity')}-clock-followers")
            ends = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, enable_auto_commit=False,
                                    client_id=f"{self.settings.group_id('identity')}-clock-end")
            self._admin, self._ends = admin, ends
            await admin.start()
            await ends.start()
        return self._admin, self._ends

    async def _committed(self, admin: AIOKafkaAdminClient) -> dict[str, int | None]:
        """Each service's committed offset on the clock partition (None: none yet)."""
        answers = await asyncio.gather(*(admin.list_consumer_group_offsets(group, partitions=[self.partition])
                                         for group in self.groups.values()))
        committed: dict[str, int | None] = {}
        for service, offsets in zip(self.groups, answers, strict=True):
            mark = offsets.get(self.partition)
            committed[service] = mark.offset if mark is not None and mark.offset >= 0 else None
        return committed

    async def _running(self, admin: AIOKafkaAdminClient, services: list[str]) -> bool:
        """Whether any of these services has a consumer in its clock group: one with none
        (stopped, not deployed) will not catch up while the advance waits."""
        # One group per request: aiokafka 0.14 misreads a Kafka 4 answer describing several.
        answers = await asyncio.gather(*(admin.describe_consumer_groups([self.groups[s]]) for s in services))
        return any(group["members"] for [answer] in answers for group in answer.to_object()["groups"])

    def _close_later(self) -> None:
        """Let go of the Kafka clients now (the next look makes new ones) and stop them in the
        background: the answer does not wait for a client that a broker outage holds up."""
        admin, ends, self._admin, self._ends = self._admin, self._ends, None, None
        if admin is not None or ends is not None:
            closing = asyncio.ensure_future(_stop(admin, ends))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Stop the Kafka clients (each within ``CLOSE_SECONDS``); the next look makes new ones."""
        admin, ends, self._admin, self._ends = self._admin, self._ends, None, None
        await _stop(admin, ends)


async def _stop(admin: AIOKafkaAdminClient | None, ends: AIOKafkaConsumer | None) -> None:
    for stop, what in ((admin.close if admin else None, "admin client"), (ends.stop if ends else None, "consumer")):
        if stop is not None:
            with contextlib.suppress(Exception):
                await within(stop(), CLOSE_SECONDS, f"the clock followers' Kafka {what} stopping")
