#!/usr/bin/env python3
"""An external consumer of the medical insurance card events, built on the published contract only.

It reads every topic named in contract/asyncapi.json with its own consumer group,
checks each record's CloudEvents headers and validates its payload against
contract/schemas/<type>.json, and prints card losses and monthly transfers.
It does not import anything from the project: copy this file and the contract/
directory, ``pip install aiokafka "jsonschema[format-nongpl]"`` (the extra brings the
date-time checker; without it jsonschema skips ``format: date-time`` silently, so the
consumer refuses to start), and run:

    python consumer.py --bootstrap 127.0.0.1:19092 --namespace medcard --group-id acme-claims
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from jsonschema import Draft202012Validator, FormatChecker

DEFAULT_CONTRACT = Path(__file__).resolve().parents[2] / "contract"


class InvalidRecord(ValueError):
    """A record that does not follow the contract."""


@dataclass(frozen=True)
class Event:
    type: str
    attributes: dict[str, str]
    data: dict[str, Any]

    @property
    def name(self) -> str:
        return self.type.split(".")[-2]


FORMATS = ("date", "date-time")
"""The formats the contract's schemas use; jsonschema checks date-time only with its extra."""


class Contract:
    """The topics, header schema and payload schemas of the published contract."""

    def __init__(self, directory: Path) -> None:
        asyncapi = json.loads((directory / "asyncapi.json").read_text(encoding="utf-8"))
        self.addresses = [channel["address"] for channel in asyncapi["channels"].values()]
        checker = FormatChecker()
        if missing := [f for f in FORMATS if f not in checker.checkers]:
            raise RuntimeError(f"jsonschema cannot check the format(s) {', '.join(missing)}: "
                               'pip install "jsonschema[format-nongpl]"')
        self.headers = Draft202012Validator(asyncapi["components"]["schemas"]["CloudEventHeaders"],
                                            format_checker=checker)
        self.payloads = {
            path.name.removesuffix(".json"): Draft202012Validator(json.loads(path.read_text(encoding="utf-8")),
                                                                  format_checker=checker)
            for path in (directory / "schemas").glob("*.json")
        }

    def topics(self, namespace: str) -> list[str]:
        return [address.replace("{namespace}", namespace) for address in self.addresses]


def _problems(validator: Draft202012Validator, instance: Any) -> str:
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
    return "; ".join(f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors[:5])


def parse(contract: Contract, headers: list[tuple[str, bytes]], value: bytes | None) -> Event:
    """Check a Kafka record against the contract and return its event, or raise InvalidRecord."""
    try:
        attrs = {name: raw.decode() for name, raw in headers}
    except UnicodeDecodeError:
        raise InvalidRecord("a header is not UTF-8") from None
    if problems := _problems(contract.headers, attrs):
        raise InvalidRecord(f"headers: {problems}")
    event_type = attrs["ce_type"]
    validator = contract.payloads.get(event_type)
    if validator is None:
        raise InvalidRecord(f"type {event_type} is not in the contract")
    try:
        data = json.loads(value or b"")
    except ValueError as err:
        raise InvalidRecord(f"payload is not JSON: {err}") from None
    if problems := _problems(validator, data):
        raise InvalidRecord(f"{event_type} payload: {problems}")
    return Event(event_type, {k.removeprefix("ce_"): v for k, v in attrs.items()}, data)


def yuan(fen: int) -> str:
    return f"{fen // 100:,}.{fen % 100:02d}"


def describe(event: Event) -> str | None:
    """One line for a card loss or a monthly transfer; None for the rest."""
    d, when = event.data, event.attributes["time"]
    if event.name == "CardLost":
        return (f"{when} LOSS     person {d['person_id']} card ****{d['card_number'][-4:]} "
                f"via {d['channel']}, voucher {d['voucher']}")
    if event.name == "MonthlyTransfer":
        return (f"{when} TRANSFER person {d['person_id']} {d['month']}: +{yuan(d['amount_fen'])} yuan, "
                f"balance {yuan(d['balance_after_fen'])} yuan")
    return None


async def consume(bootstrap: str, namespace: str, group_id: str, contract: Contract,
                  handle: Callable[[Event | InvalidRecord], None], *, stop_after: int | None = None) -> int:
    """Read every contract topic from the group's position (the start, for a new group) and hand each
    record, parsed or rejected, to ``handle``; commit after each batch. Returns how many were read."""
    consumer = AIOKafkaConsumer(*contract.topics(namespace), bootstrap_servers=bootstrap, group_id=group_id,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    seen = 0
    try:
        while stop_after is None or seen < stop_after:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    try:
                        handle(parse(contract, list(record.headers or ()), record.value))
                    except InvalidRecord as err:
                        handle(err)
                    seen += 1
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()
    return seen


def print_event(item: Event | InvalidRecord) -> None:
    if isinstance(item, InvalidRecord):
        print(f"REJECTED {item}", flush=True)
    elif line := describe(item):
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default="127.0.0.1:19092", help="Kafka bootstrap servers")
    parser.add_argument("--namespace", default="medcard", help="topic prefix of the deployment")
    parser.add_argument("--group-id", required=True, help="your own consumer group")
    parser.add_argument("--contract", type=Path, default=DEFAULT_CONTRACT, help="the contract directory")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(consume(args.bootstrap, args.namespace, args.group_id, Contract(args.contract), print_event))


if __name__ == "__main__":
    main()
