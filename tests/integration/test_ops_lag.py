"""``medcard lag`` against the real broker: a group's lag, partition by partition."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.events import CardIssued
from shared.settings import Settings
from shared.topics import topic_for_service
from tests.integration.ops_support import event, json_lines, medcard, publish

pytestmark = pytest.mark.infra


async def read_and_commit(consumer: AIOKafkaConsumer, tp: TopicPartition, upto: int) -> None:
    """Read the partition up to offset ``upto`` and commit there, as a service does."""
    while await consumer.position(tp) < upto:
        await consumer.getmany(tp, timeout_ms=500, max_records=upto - await consumer.position(tp))
    await consumer.commit({tp: upto})


async def test_lag_shows_what_a_group_has_left_and_falls_to_zero_as_it_catches_up(settings: Settings) -> None:
    # Six events of one cardholder: one partition of the cards topic.
    placed = await publish(settings, *(event(CardIssued(person_id="P-lag", card_number=f"62166100000000005{i}",
                                                        agent_bank="BOC"), key="P-lag", sequence=i + 1)
                                       for i in range(6)))
    partition = placed[0][0]
    tp = TopicPartition(topic_for_service("cards", settings.namespace), partition)

    # The bank's consumer group reads and commits two of them.
    bank = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=settings.group_id("bank"),
                            enable_auto_commit=False, auto_offset_reset="earliest")
    await bank.start()
    try:
        bank.assign([tp])
        await read_and_commit(bank, tp, 2)
        [group] = json_lines(await medcard(settings, "lag", "--service", "bank", "--json"))[0]
        assert group["group"] == settings.group_id("bank")
        rows = {(r["topic"], r["partition"]): r for r in group["partitions"]}
        assert rows[(tp.topic, partition)] == {"topic": tp.topic, "partition": partition, "committed": 2, "end": 6,
                                               "lag": 4}
        assert len(rows) == 4  # every partition of the topic the group reads
        assert group["lag"] == 4

        # The table says the same, and that the other services' groups have committed nothing here.
        table = (await medcard(settings, "lag")).stdout
        assert "no committed offsets" in table and settings.group_id("cards") in table
        cells = [[c.strip() for c in line.split("│")[1:-1]] for line in table.splitlines() if "│" in line]
        assert ["bank", settings.group_id("bank"), tp.topic, str(partition), "2", "6", "4"] in cells

        # It reads the rest: no lag left.
        await read_and_commit(bank, tp, 6)
        [group] = json_lines(await medcard(settings, "lag", "--service", "bank", "--json"))[0]
        assert group["lag"] == 0
        assert [r["committed"] for r in group["partitions"] if r["partition"] == partition] == [6]
    finally:
        await bank.stop()
