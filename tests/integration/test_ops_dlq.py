"""``medcard dlq list|show|replay`` against the real broker, with the project's own consumer
runner dead-lettering a message it cannot apply."""

from __future__ import annotations

from datetime import date

import pytest

from medcard.ops.reader import read_to_end
from shared.consumer import ConsumerRunner
from shared.events import CardIssued, CardLost, CloudEvent
from shared.settings import Settings
from shared.topics import TOPICS, topic_for_service
from tests.helpers import eventually
from tests.integration.ops_support import (
    event,
    json_lines,
    medcard,
    publish,
    run_medcard,
)

pytestmark = pytest.mark.infra
GOOD, POISON = "6216610000000000601", "6216610000000000602"


async def test_a_dead_lettered_message_is_listed_shown_and_replayed_once_the_cause_is_fixed(
    settings: Settings,
) -> None:
    cards_topic, dlq_topic = topic_for_service("cards", settings.namespace), TOPICS["cards"].dlq(settings.namespace)
    applied: list[str | None] = []
    cause = {"fixed": False}

    async def handler(ev: CloudEvent) -> None:  # the bank's projection, with a bug about one card
        if ev.subject == POISON and not cause["fixed"]:
            raise LookupError(f"card {POISON} has no account in this projection")
        applied.append(ev.subject)

    runner = ConsumerRunner(settings, service="bank", topics=[cards_topic], handler=handler)
    runner.start()
    try:
        # One event applies, the other is dead-lettered and the consumer moves on.
        [_, (partition, offset)] = await publish(
            settings, event(CardIssued(person_id="P-ok", card_number=GOOD, agent_bank="BOC"), key="P-ok"),
            event(CardLost(person_id="P-bad", card_number=POISON, channel="online", voucher="V9",
                           business_date=date(2026, 3, 2)), key="P-bad", correlation="corr-poison"))

        async def settled() -> bool:
            return runner.dead_lettered == 1 and applied == [GOOD]
        await eventually(settled)

        # dlq list: where it came from, what it is, why it is there.
        [letter] = json_lines(await medcard(settings, "dlq", "list", "--json"))[0]
        assert (letter["dlq_topic"], letter["topic"], letter["partition"], letter["offset"]) == (
            dlq_topic, cards_topic, partition, offset)
        assert letter["type"] == "cn.medcard.cards.CardLost.v1" and letter["service"] == "bank"
        assert letter["reason"] == f"LookupError: card {POISON} has no account in this projection"
        assert letter["replayed"] is None
        assert json_lines(await medcard(settings, "dlq", "list", "--service", "bank", "--json")) == [[]]
        table = (await medcard(settings, "dlq", "list")).stdout
        assert "CardLost" in table and "LookupError" in table

        # dlq show: the whole record.
        [shown] = json_lines(await medcard(settings, "dlq", "show", dlq_topic, letter["ref"]))
        assert shown["key"] == "P-bad" and shown["value"]["card_number"] == POISON
        assert shown["headers"]["ce_correlationid"] == "corr-poison" and shown["headers"]["dlq_service"] == "bank"

        # The cause is fixed; the replay puts the original record back on its topic, and it applies.
        cause["fixed"] = True
        [report] = json_lines(await medcard(settings, "dlq", "replay", dlq_topic, "--offset", letter["ref"], "--json"))
        assert [r["ref"] for r in report["replayed"]] == [letter["ref"]] and report["skipped"] == {}

        async def applied_after_replay() -> bool:
            return applied == [GOOD, POISON]
        await eventually(applied_after_replay)
        records = await read_to_end(settings, [cards_topic])
        original, again = [r for r in records if r.key == b"P-bad"]
        assert (again.partition, again.value) == (original.partition, original.value)
        headers = dict(again.headers)
        assert headers.pop("dlq_replayed_from") == f"{dlq_topic}:{letter['ref']}".encode()
        assert headers == dict(original.headers)  # no dlq_* header travels back

        # Not twice by accident: a second replay skips it and says why; --again forces it.
        [second] = json_lines(await medcard(settings, "dlq", "replay", dlq_topic, "--all", "--json"))
        assert second["replayed"] == [] and second["skipped"][letter["ref"]].startswith("already replayed at ")
        [listed] = json_lines(await medcard(settings, "dlq", "list", "--json"))[0]
        assert listed["replayed"] is not None
        assert runner.dead_lettered == 1
    finally:
        await runner.stop()


async def test_dlq_commands_refuse_what_is_not_a_dead_letter(settings: Settings) -> None:
    dlq_topic = TOPICS["bank"].dlq(settings.namespace)
    not_dlq = await run_medcard(settings, "dlq", "replay", topic_for_service("bank", settings.namespace), "--all")
    assert not_dlq.exit_code == 1 and "is not a dead-letter topic" in not_dlq.stderr
    missing = await run_medcard(settings, "dlq", "show", dlq_topic, "0:7")
    assert missing.exit_code == 1 and f"no dead letter 0:7 in {dlq_topic}" in missing.stderr
    neither = await run_medcard(settings, "dlq", "replay", dlq_topic)
    assert neither.exit_code == 2 and "give --offset (one or more) or --all" in neither.stderr
    nothing = await medcard(settings, "dlq", "replay", dlq_topic, "--all")
    assert f"{dlq_topic} holds no dead letter" in nothing.stdout
