"""The published AsyncAPI document is valid against the official AsyncAPI 3.0.0 JSON Schema."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from medcard.contract import consumers
from shared.contract.asyncapi import build_asyncapi
from shared.contract.generate import CONTRACT_DIR
from tests.asyncapi_spec import asyncapi_3_schema


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    schema = asyncapi_3_schema()
    assert schema["$id"] == "http://asyncapi.com/definitions/3.0.0/asyncapi.json"
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def problems(validator: Draft7Validator, document: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:200]}"
            for e in validator.iter_errors(document)]


def test_the_committed_documents_and_the_generated_one_are_valid_asyncapi_3(validator: Draft7Validator) -> None:
    as_json = json.loads((CONTRACT_DIR / "asyncapi.json").read_text(encoding="utf-8"))
    as_yaml = yaml.safe_load((CONTRACT_DIR / "asyncapi.yaml").read_text(encoding="utf-8"))
    for document in (as_json, as_yaml, build_asyncapi(consumers())):
        assert problems(validator, document) == []


def test_an_invalid_document_is_rejected(validator: Draft7Validator) -> None:
    document = build_asyncapi()
    wrong_action, no_version, bad_binding = (copy.deepcopy(document) for _ in range(3))
    wrong_action["operations"]["cards.publish"]["action"] = "publish"  # AsyncAPI 2 wording
    del no_version["info"]["version"]
    bad_binding["channels"]["cards"]["bindings"]["kafka"]["partitions"] = "four"
    for broken in (wrong_action, no_version, bad_binding):
        assert problems(validator, broken), "the AsyncAPI schema accepted a broken document"
