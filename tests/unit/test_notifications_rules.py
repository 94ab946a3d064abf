"""The notifications' business rules, each a named guard that refuses with its own error
(the same message and code the API has always answered with) and admits the rest (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.notifications.compose import draft_for
from services.notifications.domain import (
    EmptyReplayRange,
    Message,
    NotFailed,
    ReplayTooLong,
    UnknownEventTypes,
    check_known_event_types,
    check_only_failed_resent,
    check_replay_range,
    check_replay_size,
    create_message,
    event_type_index,
)
from shared.domain import Conflict, Invalid
from shared.events import CardLost, new_event

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
LOST = new_event(
    CardLost(person_id="P1", card_number="6216610000000012345", channel="online", voucher="V1",
             business_date=date(2026, 1, 5)),
    source="/medcard/cards", partitionkey="P1", sequence=2, correlationid="corr-1",
)


def message(status: str) -> Message:
    draft = draft_for(LOST.data)
    assert draft is not None
    created = create_message(draft, LOST, NOW)(None).state
    assert created is not None
    return created.model_copy(update={"status": status})


@pytest.mark.parametrize("status", ["pending", "awaiting_contact", "sent"])
def test_only_a_failed_message_is_resent(status: str) -> None:
    refused = message(status)
    with pytest.raises(NotFailed, match=f"message {refused.message_id} is {status}: only a failed message") as err:
        check_only_failed_resent(refused)
    assert isinstance(err.value, Conflict) and err.value.code == "conflict"
    check_only_failed_resent(message("failed"))


def test_a_webhook_names_only_event_types_of_the_catalogue() -> None:
    index = event_type_index(["cn.medcard.cards.CardLost.v1", "cn.medcard.bank.MonthlyTransfer.v1"])
    with pytest.raises(UnknownEventTypes, match="unknown event types: CardStolen, x; see /asyncapi.json") as err:
        check_known_event_types(["CardLost", "CardStolen", "x"], index)
    assert isinstance(err.value, Invalid) and err.value.code == "invalid"
    check_known_event_types(["CardLost", "cn.medcard.bank.MonthlyTransfer.v1"], index)
    check_known_event_types([], index)  # every type


def test_a_replay_range_is_not_empty() -> None:
    for until in (NOW, NOW - timedelta(seconds=1)):
        with pytest.raises(EmptyReplayRange, match="the replay range is empty: 'since' must be before 'until'") as err:
            check_replay_range(NOW, until)
        assert isinstance(err.value, Invalid) and err.value.code == "invalid"
    check_replay_range(NOW, NOW + timedelta(microseconds=1))


def test_a_replay_queues_at_most_its_limit_of_events() -> None:
    with pytest.raises(ReplayTooLong, match="more than 10000 events in that range; replay a shorter one") as err:
        check_replay_size(10_001, 10_000)
    assert isinstance(err.value, Invalid) and err.value.code == "invalid"
    check_replay_size(10_000, 10_000)
    check_replay_size(0, 10_000)
