"""The committed contract under contract/ is current, compatible and complete."""

from __future__ import annotations

import json
from datetime import date

import yaml

from services.identity.clock import advance
from shared.codec import ATTRIBUTES
from shared.contract.compat import check_contract
from medcard.contract import consumers, main
from shared.contract.generate import CONTRACT_DIR, stale_files
from shared.events import REGISTRY
from shared.topics import TOPICS

ASYNCAPI = json.loads((CONTRACT_DIR / "asyncapi.json").read_text(encoding="utf-8"))


def test_no_event_model_breaks_a_consumer_of_the_committed_schemas() -> None:
    assert check_contract(CONTRACT_DIR / "schemas") == []


def test_the_committed_files_are_what_the_models_generate() -> None:
    assert stale_files(CONTRACT_DIR, consumers()) == [], "run: python -m medcard.contract"
    assert main(["--check"]) == 0


def test_the_yaml_and_json_documents_are_the_same() -> None:
    assert yaml.safe_load((CONTRACT_DIR / "asyncapi.yaml").read_text(encoding="utf-8")) == ASYNCAPI


def test_every_event_type_has_a_schema_file_with_its_classification() -> None:
    for event_type, cls in REGISTRY.items():
        schema = json.loads((CONTRACT_DIR / "schemas" / f"{event_type}.json").read_text(encoding="utf-8"))
        assert schema["x-event-type"] == event_type and schema["title"] == cls.__name__
        assert schema["description"] and schema["x-sensitive"] == list(cls.sensitive)
        assert set(schema["properties"]) == set(cls.model_fields)
    person = json.loads((CONTRACT_DIR / "schemas" / "cn.medcard.identity.PersonRegistered.v1.json").read_text())
    assert {"id_number_masked", "id_number_digest", "mobile", "name"} <= set(person["x-sensitive"])


def test_no_event_carries_a_password_a_pin_or_a_clear_id_number() -> None:
    for event_type, cls in REGISTRY.items():
        for field in cls.model_fields:
            assert not any(word in field for word in ("password", "pin", "secret")), (event_type, field)
            assert not field.startswith("id_number") or field in ("id_number_masked", "id_number_digest")
    assert "never carry a resident ID number in clear, a password or a PIN" in ASYNCAPI["info"]["x-sensitive-data"]


def test_the_asyncapi_document_has_one_channel_and_one_send_operation_per_topic() -> None:
    assert ASYNCAPI["asyncapi"] == "3.0.0"
    assert set(ASYNCAPI["channels"]) == set(TOPICS)
    for service, channel in ASYNCAPI["channels"].items():
        assert channel["address"] == "{namespace}." + service
        assert set(channel["messages"]) == {t for t, c in REGISTRY.items() if c.service == service}
        operation = ASYNCAPI["operations"][f"{service}.publish"]
        assert operation["action"] == "send" and operation["channel"] == {"$ref": f"#/channels/{service}"}
    assert set(ASYNCAPI["components"]["messages"]) == set(REGISTRY)


def test_each_message_documents_its_key_headers_and_payload() -> None:
    headers = ASYNCAPI["components"]["schemas"]["CloudEventHeaders"]["properties"]
    assert set(headers) == {f"ce_{a}" for a in ATTRIBUTES} | {"content-type"}
    lost = ASYNCAPI["components"]["messages"]["cn.medcard.cards.CardLost.v1"]
    assert lost["payload"] == {"$ref": "#/components/schemas/cn.medcard.cards.CardLost.v1"}
    assert lost["headers"]["allOf"][1]["properties"]["ce_type"]["const"] == "cn.medcard.cards.CardLost.v1"
    assert "person id" in lost["bindings"]["kafka"]["key"]["description"]


def test_each_operation_names_the_service_that_really_publishes_its_topic() -> None:
    # The identity service keeps the business clock: its decisions are the clock's events.
    produced = advance(today=date(2026, 1, 30), days=2)(None).events
    assert {type(e).service for e in produced} == {"clock"}
    assert TOPICS["clock"].produced_by == "identity"
    # The document says so, and nowhere speaks of a clock service.
    operation = ASYNCAPI["operations"]["clock.publish"]
    assert operation["title"] == "The identity service publishes"
    assert "produced by the identity service" in operation["summary"]
    assert "clock service" not in json.dumps(ASYNCAPI)
    for service in set(TOPICS) - {"clock"}:
        assert ASYNCAPI["operations"][f"{service}.publish"]["title"] == f"The {service} service publishes"


def test_each_consuming_service_has_a_receive_operation_per_topic_it_applies_events_of() -> None:
    applied = consumers()
    receives = {k: v for k, v in ASYNCAPI["operations"].items() if v["action"] == "receive"}
    expected = {f"{c}.receive.{REGISTRY[t].service}" for c, types in applied.items() for t in types}
    assert set(receives) == expected
    for key, operation in receives.items():
        consumer, _, channel = key.split(".")
        assert operation["channel"] == {"$ref": f"#/channels/{channel}"}
        listed = {m["$ref"].rsplit("/", 1)[1] for m in operation["messages"]}
        assert listed == {t for t in applied[consumer] if REGISTRY[t].service == channel}
