"""The AsyncAPI 3.0 document: every topic, its key, its messages, headers and producer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shared.codec import ATTRIBUTES
from shared.events import REGISTRY, SPECVERSION
from shared.topics import TOPICS

from .schemas import all_event_schemas

ASYNCAPI_VERSION = "3.0.0"
CONTRACT_VERSION = "1.0.0"
NAMESPACE = "medcard"
KAFKA_BINDING = "0.5.0"
PERSONAL_HEADERS = ("ce_subject", "ce_partitionkey")
"""Headers that carry a card number or an aggregate id: personal data in a person's events."""

SENSITIVE_DATA = (
    "Events never carry a resident ID number in clear, a password or a PIN. A person's ID number "
    "appears only masked (first 3 and last 4 characters, id_number_masked) and as a keyed "
    "HMAC-SHA256 digest (id_number_digest) that is useless without the ecosystem's key. "
    "Each message's x-sensitive (and each schema file's) lists the payload fields with personal "
    "data, by one rule: a field is listed when its value identifies a natural person or reaches "
    "them: a person's name, mobile number, masked ID number and ID digest, person ids, card numbers "
    "in every role (card_number, old_card_number, new_card_number, replaces, replaced_by), "
    "personal account ids, online account numbers, staff user ids and usernames, and text from "
    "outside the ecosystem that may echo any of them (a delivery error). Not listed: ids and names "
    "of organisations (insured units, merchants), reference numbers of one case or transaction "
    "(loss voucher, replacement receipt, letter reference, authorisation, contribution, message "
    "and event ids: none leads to a person without the holder's login, a staff role or the ID "
    "number), amounts, dates, channels and codes. The unlisted fields of an event that has a "
    "listed one still describe that person: keep such an event as personal data as a whole. "
    "Headers too: ce_subject carries the card number when the payload has one, else the aggregate "
    "id, and ce_partitionkey (equal to the record key) the aggregate id: a person id for a person's "
    "events, staff:<username> for a staff user, a message id for a notification. Each message's "
    "x-sensitive-headers lists them when its payload has personal fields. Store personal data "
    "only as long as you need it and never log it."
)

DESCRIPTION = f"""Events of the medical insurance card ecosystem (identity, cards, bank, notifications).

**Topics.** One topic per service segment of the event types, named
`<namespace>.<service>` (namespace `{NAMESPACE}` in production); each operation names
the service that publishes the topic (the identity service keeps the business clock
and also publishes `clock`). The record key is the aggregate id (see each channel), so
one aggregate's events stay in order. Topics keep events forever. A `<topic>.dlq` topic beside each one holds what its consumers could not
apply; it is not part of this contract.

**Envelope.** CloudEvents {SPECVERSION}, Kafka protocol binding, binary content mode:
the attributes travel as `ce_*` headers (UTF-8 strings; `ce_sequence` is the
aggregate's event number, `ce_partitionkey` equals the record key,
`ce_correlationid` ties the events of one request together, `ce_causationid` names
the event that caused this one), the payload is the JSON record value with
`content-type: application/json`. Webhooks deliver the same events in structured mode
(`application/cloudevents+json`), signed the Standard Webhooks way.

**Evolution.** A payload's schema only grows by optional fields: ignore fields you do
not know. A breaking change (a removed, retyped or newly required field, a renamed
type) is published as a new type string with a higher version (`...Name.v2`); the
schema files of older versions stay published.

**Sensitive data.** {SENSITIVE_DATA}
"""


def header_schema() -> dict[str, Any]:
    """The Kafka headers of every message (CloudEvents binary mode) plus content-type."""
    descriptions = {
        "specversion": "CloudEvents version",
        "id": "Unique event id (use it to drop duplicates)",
        "source": "The producing service, /medcard/<service> (/medcard/identity for the clock's events)",
        "type": "Event type: cn.medcard.<service>.<Name>.v<version>",
        "time": "When the event happened, RFC 3339 UTC",
        "subject": "The card number when the payload has one, else the aggregate id (personal data: "
                   "see x-sensitive-headers)",
        "sequence": "Position of the event in its aggregate's history (1, 2, ...), decimal",
        "partitionkey": "The aggregate id; equals the record key (personal data: see x-sensitive-headers)",
        "correlationid": "Id shared by every event caused by one request",
        "causationid": "Id of the event that caused this one, if any",
    }
    properties: dict[str, Any] = {f"ce_{a}": {"type": "string", "description": descriptions[a]} for a in ATTRIBUTES}
    properties["ce_specversion"]["const"] = SPECVERSION
    properties["ce_time"]["format"] = "date-time"
    properties["ce_sequence"]["pattern"] = "^[1-9][0-9]*$"
    properties["content-type"] = {"type": "string", "const": "application/json"}
    optional = {"ce_subject", "ce_causationid"}
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
    }


def _key(service: str) -> str:
    description = TOPICS[service].description
    return description.split("key:", 1)[1].strip() if "key:" in description else "the aggregate id"


def _message(event_type: str, schema: dict[str, Any]) -> dict[str, Any]:
    service = REGISTRY[event_type].service
    return {
        "name": schema["title"],
        "title": f"{schema['title']} v{schema['x-version']}",
        "summary": schema["description"],
        "contentType": "application/json",
        "headers": {"allOf": [
            {"$ref": "#/components/schemas/CloudEventHeaders"},
            {"type": "object", "properties": {"ce_type": {"type": "string", "const": event_type}}},
        ]},
        "payload": {"$ref": f"#/components/schemas/{event_type}"},
        "correlationId": {"$ref": "#/components/correlationIds/correlationid"},
        "bindings": {"kafka": {"key": {"type": "string", "description": _key(service)},
                               "bindingVersion": KAFKA_BINDING}},
        "x-cloudevents-type": event_type,
        "x-sensitive": schema["x-sensitive"],
        "x-sensitive-headers": list(PERSONAL_HEADERS) if schema["x-sensitive"] else [],
    }


def build_asyncapi(consumers: Mapping[str, Iterable[str]] | None = None) -> dict[str, Any]:
    """The whole document, built from ``REGISTRY`` and the topic registry; ``consumers``
    (service -> the event types its handler tables apply, ``medcard.contract``) adds each
    service's ``receive`` operations: who applies what, channel by channel."""
    schemas = all_event_schemas()
    payloads = {t: {k: v for k, v in s.items() if k != "$schema"} for t, s in schemas.items()}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for service, topic in TOPICS.items():
        types = [t for t in schemas if REGISTRY[t].service == service]
        channels[service] = {
            "address": "{namespace}." + service,
            "title": f"{NAMESPACE}.{service}",
            "description": topic.description,
            "parameters": {"namespace": {"default": NAMESPACE,
                                         "description": "Deployment namespace (topic prefix)"}},
            "messages": {t: {"$ref": f"#/components/messages/{t}"} for t in types},
            "bindings": {"kafka": {"partitions": topic.partitions,
                                   "topicConfiguration": {"retention.ms": topic.retention_ms},
                                   "bindingVersion": KAFKA_BINDING}},
        }
        operations[f"{service}.publish"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{service}"},
            "title": f"The {topic.produced_by} service publishes",
            "summary": f"Events produced by the {topic.produced_by} service, keyed by {_key(service)}.",
            "messages": [{"$ref": f"#/channels/{service}/messages/{t}"} for t in types],
        }
    for consumer, applied_types in sorted((consumers or {}).items()):
        applied = set(applied_types)
        for service in TOPICS:
            wanted = [t for t in schemas if REGISTRY[t].service == service and t in applied]
            if not wanted:
                continue
            operations[f"{consumer}.receive.{service}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{service}"},
                "title": f"The {consumer} service applies",
                "summary": f"Events of the {service} topic the {consumer} service applies (its handler table); "
                           f"it passes over the others.",
                "messages": [{"$ref": f"#/channels/{service}/messages/{t}"} for t in wanted],
            }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Medical insurance card ecosystem: events",
            "version": CONTRACT_VERSION,
            "description": DESCRIPTION,
            "x-sensitive-data": SENSITIVE_DATA,
        },
        "defaultContentType": "application/json",
        "servers": {"local": {"host": "127.0.0.1:19092", "protocol": "kafka",
                              "description": "The development broker (MEDCARD_KAFKA_BOOTSTRAP)"}},
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": {"CloudEventHeaders": header_schema(), **payloads},
            "messages": {t: _message(t, schemas[t]) for t in schemas},
            "correlationIds": {"correlationid": {
                "description": "Ties together the events caused by one request",
                "location": "$message.header#/ce_correlationid"}},
        },
    }
