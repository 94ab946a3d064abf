"""``medcard events tail`` against the real broker: what it shows, from where, with which filters."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from medcard.ops.filters import EventFilter
from medcard.ops.tail import event_tail
from shared.events import CardIssued, CardLost, PurchaseDeclined
from shared.settings import Settings
from shared.topics import all_topic_names
from tests.integration.ops_support import (
    event,
    json_lines,
    medcard,
    publish,
    run_medcard,
)

pytestmark = pytest.mark.infra
TODAY = date(2026, 3, 2)


def issued(person: str, card: str) -> CardIssued:
    return CardIssued(person_id=person, card_number=card, agent_bank="BOC")


def lost(person: str, card: str) -> CardLost:
    return CardLost(person_id=person, card_number=card, channel="online", voucher="V1", business_date=TODAY)


def declined(person: str, card: str) -> PurchaseDeclined:
    return PurchaseDeclined(person_id=person, card_number=card, authorisation_id="AU1", merchant_id="M1",
                            amount_fen=1250, kind="purchase", reason_code="41", reason="lost card", business_date=TODAY)


async def test_events_tail_shows_exactly_the_events_its_filters_match(settings: Settings) -> None:
    groups_before = await consumer_groups(settings)
    # Three events of different types, about two cards of two people, one sharing a correlation id.
    await publish(settings,
                  event(issued("P-A", "6216610000000000011"), key="P-A", correlation="corr-shared"),
                  event(lost("P-A", "6216610000000000011"), key="P-A", sequence=2),
                  event(declined("P-B", "6216610000000000022"), key="P-B", correlation="corr-shared"))

    # By card, as JSON envelopes: the card's two events, in the order they were published.
    by_card = json_lines(await medcard(settings, "events", "tail", "--from", "start", "--card", "6216610000000000011",
                                       "--json", "--idle-exit", "1.5"))
    assert [e["type"] for e in by_card] == ["cn.medcard.cards.CardIssued.v1", "cn.medcard.cards.CardLost.v1"]
    assert {e["subject"] for e in by_card} == {"6216610000000000011"}
    assert by_card[1]["data"]["voucher"] == "V1"

    # By short type name, as coloured lines: one line with its time, type, subject and key facts.
    by_type = await medcard(settings, "events", "tail", "--from", "start", "--type", "cardlost", "--idle-exit", "1.5")
    [line] = by_type.stdout.splitlines()
    assert "CardLost" in line and "6216610000000000011" in line and "channel=online" in line and "voucher=V1" in line

    # By correlation id and bank topic only: the bank's refusal, amounts in yuan.
    by_corr = await medcard(settings, "events", "tail", "--from", "start", "--service", "bank",
                            "--correlation", "corr-shared", "--idle-exit", "1.5")
    [line] = by_corr.stdout.splitlines()
    assert "PurchaseDeclined" in line and "amount=¥12.50" in line and "person=P-B" in line

    # By person, full type: nothing about another person.
    by_person = json_lines(await medcard(settings, "events", "tail", "--from", "start", "--person", "P-B", "--type",
                                         "cn.medcard.bank.PurchaseDeclined.v1", "--json", "--idle-exit", "1.5"))
    assert [e["partitionkey"] for e in by_person] == ["P-B"]

    # Four tails later the broker knows no new consumer group: the services' offsets are untouched.
    # (Other tests' groups may expire meanwhile: only a group added would be the tails'.)
    assert await consumer_groups(settings) - groups_before == set()


async def consumer_groups(settings: Settings) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        return {group for group, _protocol in await admin.list_consumer_groups()}
    finally:
        await admin.close()


async def test_events_tail_stops_after_its_limit_without_waiting(settings: Settings) -> None:
    await publish(settings, *(event(issued(f"P-{i}", f"621661000000000010{i}"), key=f"P-{i}") for i in range(3)))
    started = time.monotonic()
    result = await medcard(settings, "events", "tail", "--from", "start", "--json", "--limit", "2")
    assert len(json_lines(result)) == 2
    assert time.monotonic() - started < 15


async def test_events_tail_from_now_shows_only_what_is_published_after_it_started(settings: Settings) -> None:
    await publish(settings, event(issued("P-old", "6216610000000000031"), key="P-old"))
    async with event_tail(settings, all_topic_names(settings.namespace, with_dlq=False), "now", EventFilter()) as tail:
        await publish(settings, event(issued("P-new", "6216610000000000032"), key="P-new"))
        seen: list[str | None] = []
        deadline = time.monotonic() + 15
        while not seen and time.monotonic() < deadline:
            seen += [v.subject for v in (await tail.poll(0.5))[1]]
        seen += [v.subject for v in (await tail.poll(1.0))[1]]  # and nothing else comes
    assert seen == ["6216610000000000032"]


async def test_events_tail_from_a_time_starts_at_the_first_event_at_or_after_it(settings: Settings) -> None:
    await publish(settings, event(issued("P-before", "6216610000000000041"), key="P-before"))
    await asyncio.sleep(0.3)
    moment = datetime.now(UTC).isoformat()
    await asyncio.sleep(0.3)
    await publish(settings, event(issued("P-after", "6216610000000000042"), key="P-after"))
    after = json_lines(await medcard(settings, "events", "tail", "--from", moment, "--json", "--idle-exit", "1.5"))
    assert [e["partitionkey"] for e in after] == ["P-after"]


async def test_events_tail_refuses_an_unreadable_start_time_and_an_unknown_service(settings: Settings) -> None:
    bad_time = await run_medcard(settings, "events", "tail", "--from", "yesterday")
    assert bad_time.exit_code == 1 and "--from must be now, start or an ISO 8601 time" in bad_time.stderr
    bad_service = await run_medcard(settings, "events", "tail", "--service", "payroll")
    assert bad_service.exit_code == 1 and "unknown service payroll" in bad_service.stderr


async def test_events_tail_shows_control_characters_of_event_text_as_escapes(settings: Settings) -> None:
    """A unit name or agent bank with an ESC sequence retitled and recoloured the operator's terminal."""
    hostile = "BOC\x1b]0;owned\x07\x1b[2J\x1b[31m\x9b31m\u202e"
    await publish(settings, event(CardIssued(person_id="P-ESC", card_number="6216610000000000033",
                                             agent_bank=hostile), key="P-ESC", correlation="corr-esc"))
    lines = await medcard(settings, "events", "tail", "--from", "start", "--person", "P-ESC", "--idle-exit", "1.5")
    as_json = await medcard(settings, "events", "tail", "--from", "start", "--person", "P-ESC", "--json",
                            "--idle-exit", "1.5")
    for shown in (lines.stdout, as_json.stdout):
        assert not any(ch in shown for ch in "\x1b\x07\x9b\u202e"), repr(shown)
    [line] = lines.stdout.splitlines()
    assert "agent_bank=BOC\\x1b]0;owned\\x07\\x1b[2J" in line
    assert json_lines(as_json)[0]["data"]["agent_bank"] == hostile  # the JSON still says exactly what was sent
