"""The example external consumer reads every event type from the real broker with the
published contract alone (the project's own models only produce the samples)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from jsonschema import FormatChecker

from shared.contract.generate import CONTRACT_DIR
from shared.events import REGISTRY, CardLost, CloudEvent, EventData, FraudAlertRaised
from shared.settings import Settings
from tests.integration.notifications_support import event, produce, sample

pytestmark = pytest.mark.infra
CONSUMER = Path(__file__).resolve().parents[2] / "examples" / "consumer" / "consumer.py"


def load_consumer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("medcard_example_consumer", CONSUMER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_the_example_consumer_validates_one_sample_of_every_event_type(settings: Settings) -> None:
    consumer = load_consumer()
    samples: list[CloudEvent] = [event(sample(cls), f"K-{cls.__name__}") for cls in REGISTRY.values()]
    await produce(settings, samples)
    seen: list[Any] = []
    count = await consumer.consume(settings.kafka_bootstrap, settings.namespace, f"{settings.namespace}.acme",
                                   consumer.Contract(CONTRACT_DIR), seen.append, stop_after=len(samples))
    rejected = [str(item) for item in seen if isinstance(item, consumer.InvalidRecord)]
    assert rejected == []
    assert count == len(samples)
    assert sorted(e.type for e in seen) == sorted(REGISTRY)
    lines = [line for e in seen if (line := consumer.describe(e))]
    assert len(lines) == 2 and any(" LOSS " in line for line in lines) and any(" TRANSFER " in line for line in lines)


def record(data: EventData) -> tuple[list[tuple[str, bytes]], bytes]:
    """The Kafka headers and value the outbox would write for ``data``."""
    headers = [(f"ce_{k}", str(v).encode()) for k, v in event(data, "P1").model_dump(
        mode="json", exclude={"data", "datacontenttype"}).items() if v is not None]
    return [*headers, ("content-type", b"application/json")], data.model_dump_json().encode()


def test_the_example_consumer_rejects_a_payload_that_breaks_the_contract() -> None:
    consumer = load_consumer()
    contract = consumer.Contract(CONTRACT_DIR)
    headers, good = record(sample(CardLost))
    assert consumer.parse(contract, headers, good).name == "CardLost"
    with pytest.raises(consumer.InvalidRecord, match="voucher"):
        consumer.parse(contract, headers, good.replace(b'"voucher"', b'"coupon"'))
    with pytest.raises(consumer.InvalidRecord, match="channel"):
        consumer.parse(contract, headers, good.replace(b'"online"', b'"pigeon"'))
    with pytest.raises(consumer.InvalidRecord, match="ce_sequence"):
        consumer.parse(contract, [(k, b"0" if k == "ce_sequence" else v) for k, v in headers], good)


def test_the_example_consumer_rejects_a_malformed_date_or_time() -> None:
    consumer = load_consumer()
    contract = consumer.Contract(CONTRACT_DIR)
    headers, lost = record(sample(CardLost))
    with pytest.raises(consumer.InvalidRecord, match="ce_time.*is not a 'date-time'"):
        consumer.parse(contract, [(k, b"2026-01-05 06:30" if k == "ce_time" else v) for k, v in headers], lost)
    with pytest.raises(consumer.InvalidRecord, match="business_date.*is not a 'date'"):
        consumer.parse(contract, headers, lost.replace(b'"2026-01-05"', b'"2026-02-30"'))
    headers, alert = record(sample(FraudAlertRaised))
    assert consumer.parse(contract, headers, alert).name == "FraudAlertRaised"
    with pytest.raises(consumer.InvalidRecord, match="attempted_at.*is not a 'date-time'"):
        consumer.parse(contract, headers, alert.replace(b"2026-01-05T06:30:00Z", b"2026-01-05T25:30:00Z"))


def test_the_example_consumer_will_not_run_without_its_date_time_checker(monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = load_consumer()
    monkeypatch.delitem(FormatChecker.checkers, "date-time")  # what plain `pip install jsonschema` gives
    with pytest.raises(RuntimeError, match=r"jsonschema\[format-nongpl\]"):
        consumer.Contract(CONTRACT_DIR)
