"""CloudEvents Kafka protocol binding, binary content mode.

Attributes travel as ``ce_<name>`` headers (UTF-8 strings), the payload as the JSON
record value with ``content-type: application/json``, and ``partitionkey`` as the
record key so one aggregate's events stay in one partition, in order.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from .events import CloudEvent, InvalidEvent, parse_event

ATTRIBUTES = (
    "specversion", "id", "source", "type", "time", "subject", "sequence",
    "partitionkey", "correlationid", "causationid",
)


class KafkaRecord(Protocol):
    key: bytes | None
    value: bytes | None
    headers: Any


def to_record(event: CloudEvent) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) for the producer."""
    attrs = event.model_dump(mode="json", exclude={"data", "datacontenttype"})
    headers = [(f"ce_{k}", str(v).encode()) for k, v in attrs.items() if k in ATTRIBUTES and v is not None]
    headers.append(("content-type", event.datacontenttype.encode()))
    return event.partitionkey.encode(), event.data.model_dump_json().encode(), headers


_HEADER_NAMES = tuple((k, f"ce_{k}") for k in ATTRIBUTES)
_CONTENT_TYPE = ("content-type", b"application/json")
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


def stored_to_record(stored: dict[str, Any]) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """Same as to_record, from an envelope kept as a document in an outbox (no re-validation)."""
    headers = [(name, value.encode() if type(value) is str else str(value).encode())
               for k, name in _HEADER_NAMES if (value := stored.get(k)) is not None]
    headers.append(_CONTENT_TYPE)
    return stored["partitionkey"].encode(), _compact_json(stored["data"]).encode(), headers


def record_to_dict(record: KafkaRecord) -> dict[str, Any]:
    """The envelope dict of a Kafka record, before validation. Raises InvalidEvent."""
    attrs: dict[str, Any] = {}
    for name, raw in record.headers or ():
        if name.startswith("ce_"):
            try:
                attrs[name[3:]] = raw.decode()
            except UnicodeDecodeError:
                raise InvalidEvent(f"header {name} is not UTF-8") from None
    if "type" not in attrs:
        raise InvalidEvent("missing ce_type header: not a CloudEvent in binary mode")
    try:
        attrs["data"] = json.loads(record.value or b"")
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidEvent(f"record value is not JSON: {err}") from None
    if record.key is not None and attrs.get("partitionkey") != record.key.decode(errors="replace"):
        raise InvalidEvent("record key differs from the partitionkey attribute")
    return attrs


def from_record(record: KafkaRecord) -> CloudEvent:
    return parse_event(record_to_dict(record))
