"""The leak scanner of the end-to-end test finds what it looks for, and only that."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from tests.e2e.leak_scan import Secrets, scan_document, scan_logs, scan_records

ID = "11010519491231002X"
SECRETS = Secrets.of({"123456", "pw-987654321", ID})


def record(value: object, headers: list[tuple[str, bytes]] | None = None) -> SimpleNamespace:
    return SimpleNamespace(topic="t", partition=0, offset=1, key=b"P1", value=json.dumps(value).encode(),
                           headers=headers or [])


def test_a_planted_pin_password_or_id_number_is_found_wherever_it_is() -> None:
    assert scan_document({"data": {"note": "pin 123456"}}, SECRETS, "x") == []  # not quoted: not a PIN
    assert scan_document({"data": {"code": "123456"}}, SECRETS, "x") == ["x data.code: ['123456']"]
    assert scan_document({"a": [{"b": f"id {ID.lower()} seen"}]}, SECRETS, "x")
    assert scan_document({"password": "whatever"}, SECRETS, "x") == ["x: a field named password"]
    assert scan_document({"new_pin": None}, SECRETS, "x") == ["x: a field named new_pin"]
    assert scan_document({ID: 1}, SECRETS, "x")  # in a field name
    assert scan_records([record({"x": 1}, [("ce_subject", b"123456")])], SECRETS)
    assert scan_records([record({"msg": "pw-987654321 rejected"})], SECRETS)


def test_six_digit_runs_of_amounts_times_and_card_numbers_are_not_pins() -> None:
    harmless = {"amount_fen": 123456, "time": "2026-01-05T10:11:12.123456+00:00",
                "card_number": "6216611234560000018", "id_number_masked": "110***********002X",
                "pin_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", "id_number_digest": "ab" * 32}
    assert scan_document(harmless, SECRETS, "x") == []
    assert scan_records([record(harmless)], SECRETS) == []


def test_logs_are_scanned_as_json_lines_and_as_plain_text(tmp_path: Path) -> None:
    log = tmp_path / "bank.out"
    log.write_text('{"msg": "service.started"}\nINFO: Started server process [42]\n'
                   "ValueError: {'pin': '123456'}\n" + json.dumps({"msg": "x", "detail": "pw-987654321"}) + "\n")
    found = scan_logs([log], SECRETS)
    assert found == ["bank.out:3: 123456", "bank.out:4 detail: ['pw-987654321']"]
