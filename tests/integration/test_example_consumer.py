"""The example external consumer reads every event type from the real broker with the
published contract alone (the project's own models only produce the samples)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from shared.contract.generate import CONTRACT_DIR
from shared.events import REGISTRY, CloudEvent
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


def test_the_example_consumer_rejects_a_payload_that_breaks_the_contract() -> None:
    consumer = load_consumer()
    contract = consumer.Contract(CONTRACT_DIR)
    lost = next(cls for t, cls in REGISTRY.items() if t.endswith(".CardLost.v1"))
    headers = [(f"ce_{k}", str(v).encode()) for k, v in event(sample(lost), "P1").model_dump(
        mode="json", exclude={"data", "datacontenttype"}).items() if v is not None]
    headers.append(("content-type", b"application/json"))
    good = sample(lost).model_dump_json().encode()
    assert consumer.parse(contract, headers, good).name == "CardLost"
    with pytest.raises(consumer.InvalidRecord, match="voucher"):
        consumer.parse(contract, headers, good.replace(b'"voucher"', b'"coupon"'))
    with pytest.raises(consumer.InvalidRecord, match="channel"):
        consumer.parse(contract, headers, good.replace(b'"online"', b'"pigeon"'))
    with pytest.raises(consumer.InvalidRecord, match="ce_sequence"):
        consumer.parse(contract, [(k, b"0" if k == "ce_sequence" else v) for k, v in headers], good)
