"""The CloudEvents envelope, the event union and the Kafka codec, without any I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from shared.codec import from_record, record_to_dict, to_record
from shared.events import REGISTRY, CardLost, InvalidEvent, MonthlyTransfer, new_event, parse_event


@dataclass
class Record:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def card_lost(**overrides: Any) -> Any:
    data = {"person_id": "P1", "card_number": "6216610000000000001", "channel": "online", "voucher": "V1",
            "business_date": date(2026, 3, 2)}
    data.update(overrides)
    return new_event(CardLost(**data), source="/medcard/cards", partitionkey="P1", sequence=4,
                     correlationid="corr", causationid="cause", subject="6216610000000000001")


def test_type_strings_are_reverse_dns_and_versioned() -> None:
    assert CardLost.event_type() == "cn.medcard.cards.CardLost.v1"
    assert all(t.startswith("cn.medcard.") and t.rsplit(".", 1)[1].startswith("v") for t in REGISTRY)


def test_the_required_events_of_the_brief_exist() -> None:
    names = {cls.__name__ for cls in REGISTRY.values()}
    assert {"CardLost", "ReplacementRequested", "BankStamped", "MonthlyTransfer"} <= names


def test_an_event_survives_the_kafka_codec_unchanged() -> None:
    event = card_lost()
    key, value, headers = to_record(event)
    assert key == b"P1"
    assert dict(headers)["ce_sequence"] == b"4"
    assert from_record(Record(key, value, headers)) == event


def test_the_record_value_is_the_bare_payload() -> None:
    _, value, _ = to_record(card_lost())
    assert value.startswith(b'{"person_id":"P1"')


def test_an_unknown_type_is_rejected_with_its_name() -> None:
    raw = card_lost().model_dump(mode="json") | {"type": "cn.medcard.cards.CardEaten.v1"}
    with pytest.raises(InvalidEvent, match="unknown event type 'cn.medcard.cards.CardEaten.v1'"):
        parse_event(raw)


def test_a_malformed_payload_is_rejected_with_the_field_and_the_reason() -> None:
    raw = card_lost().model_dump(mode="json")
    raw["data"]["channel"] = "carrier-pigeon"
    with pytest.raises(InvalidEvent, match=r"data\.channel: Input should be 'online' or 'bank'"):
        parse_event(raw)


def test_an_unexpected_payload_field_is_rejected() -> None:
    raw = card_lost().model_dump(mode="json")
    raw["data"]["password"] = "123456"
    with pytest.raises(InvalidEvent, match="data.password: Extra inputs are not permitted"):
        parse_event(raw)


def test_money_is_integer_fen() -> None:
    with pytest.raises(ValueError):
        MonthlyTransfer(person_id="P", account_id="A", card_number="1", month="2026-01", contribution_id="C",
                        amount_fen=10.5, balance_after_fen=0)  # type: ignore[arg-type]


def test_a_record_without_ce_headers_is_not_a_cloudevent() -> None:
    with pytest.raises(InvalidEvent, match="missing ce_type"):
        record_to_dict(Record(b"k", b"{}", []))


def test_a_record_whose_key_differs_from_its_partitionkey_is_rejected() -> None:
    _key, value, headers = to_record(card_lost())
    with pytest.raises(InvalidEvent, match="record key differs"):
        record_to_dict(Record(b"P2", value, headers))


def test_sequence_numbers_start_at_one() -> None:
    with pytest.raises(ValueError):
        new_event(CardLost(person_id="P", card_number="1", channel="bank", voucher="V", business_date=date.today()),
                  source="s", partitionkey="P", sequence=0, correlationid="c")
