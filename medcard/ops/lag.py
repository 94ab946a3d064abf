"""Consumer lag: for each service's consumer group and partition, the committed offset,
the end offset and how many records wait between them."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CoordinatorLoadInProgressError, GroupCoordinatorNotAvailableError
from aiokafka.structs import OffsetAndMetadata
from pydantic import BaseModel, Field

from medcard.ports import SERVICE_PORTS
from shared.domain import Invalid
from shared.settings import Settings

from .reader import admin_client, partitions

SERVICES = tuple(SERVICE_PORTS)
COORDINATOR_WAIT_SECONDS = 30.0


class PartitionLag(BaseModel):
    topic: str
    partition: int
    committed: int | None = Field(description="Next offset the group will read; None if it never committed here")
    end: int = Field(description="Offset the next record written to the partition will get")
    lag: int = Field(description="Records waiting: end minus committed (minus the first offset if never committed)")


class GroupLag(BaseModel):
    service: str
    group: str
    lag: int = Field(description="Total over the group's partitions")
    partitions: list[PartitionLag] = Field(description="Every partition of every topic the group has committed on")


async def consumer_lag(settings: Settings, services: list[str] | None = None) -> list[GroupLag]:
    """The lag of each service's group (settings.group_id(service)), from Kafka alone."""
    unknown = sorted(set(services or ()) - set(SERVICES))
    if unknown:
        raise Invalid(f"unknown service {', '.join(unknown)}; choose from {', '.join(SERVICES)}")
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                enable_auto_commit=False, client_id=f"{settings.namespace}-ops-lag")
    async with admin_client(settings) as admin:
        await consumer.start()
        try:
            return [await group_lag(admin, consumer, service, settings.group_id(service))
                    for service in services or SERVICES]
        finally:
            await consumer.stop()


async def group_lag(admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, service: str, group: str) -> GroupLag:
    committed = {tp: meta.offset for tp, meta in (await _committed_offsets(admin, group)).items()
                 if meta.offset >= 0}
    tps = await partitions(admin, sorted({tp.topic for tp in committed}), missing_ok=True)
    if not tps:
        return GroupLag(service=service, group=group, lag=0, partitions=[])
    ends = await consumer.end_offsets(tps)
    firsts = await consumer.beginning_offsets(tps)
    rows = [PartitionLag(topic=tp.topic, partition=tp.partition, committed=committed.get(tp), end=ends[tp],
                         lag=max(0, ends[tp] - committed.get(tp, firsts[tp])))
            for tp in tps]
    return GroupLag(service=service, group=group, lag=sum(r.lag for r in rows), partitions=rows)


async def _committed_offsets(admin: AIOKafkaAdminClient, group: str,
                             timeout: float = COORDINATOR_WAIT_SECONDS) -> dict[TopicPartition, OffsetAndMetadata]:
    """The group's committed offsets. A broker that has never seen a consumer group has
    no coordinator yet (it creates ``__consumer_offsets`` on the first lookup): wait
    for it rather than report Kafka as down."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            offsets: dict[Any, Any] = await admin.list_consumer_group_offsets(group)
            return offsets
        except (GroupCoordinatorNotAvailableError, CoordinatorLoadInProgressError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
