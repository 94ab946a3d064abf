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

    async def wait(self, published: Callable[[], Awaitable[bool]], seconds: float) -> list[str]:
        """Wait at most ``seconds`` until ``published()`` is true (the advance's events are on
        the clock topic) and every group with a consumer has committed up to the partition's
        end. Returns the services behind then (every one when the events were not yet
        published or Kafka did not answer); empty when all have applied the new date."""
        behind = sorted(self.groups)
        connected = False
        try:
            async with asyncio.timeout(seconds):
                while not await published():
                    await asyncio.sleep(POLL_SECONDS)
                admin, ends = await self._clients()
                connected = True
                end = (await ends.end_offsets([self.partition]))[self.partition]
                while (behind := services_behind(await self._committed(admin), end)) \
                        and await self._running(admin, behind):
                    await asyncio.sleep(POLL_SECONDS)
        except TimeoutError:
            log.warning("identity.clock_followers_behind", behind=behind, waited_seconds=seconds)
            if not connected:  # cut off while connecting: start afresh next time
                await self.close()
        except Exception as err:  # the clock has moved: the answer must still come, naming them all
            transient = isinstance(err, TRANSIENT_KAFKA_ERRORS)
            (log.warning if transient else log.error)("identity.clock_followers_unknown", error=repr(err),
                                                      behind=behind)
            await self.close()
        return behind

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

    async def close(self) -> None:
        """Stop the Kafka clients (each within ``CLOSE_SECONDS``); the next look makes new ones."""
        admin, ends, self._admin, self._ends = self._admin, self._ends, None, None
        for stop, what in ((admin.close if admin else None, "admin client"), (ends.stop if ends else None, "consumer")):
            if stop is not None:
                with contextlib.suppress(Exception):
                    await within(stop(), CLOSE_SECONDS, f"the clock followers' Kafka {what} stopping")
