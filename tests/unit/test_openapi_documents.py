"""The four services' OpenAPI documents are complete enough to call an API from them alone:
every request body and every success answer shows an example, an operation that needs a
token says what 401 and 403 look like, and every documented error has the shared body."""

from __future__ import annotations

from typing import Any

import pytest

from services.bank.app import create as create_bank
from services.cards.app import create as create_cards
from services.identity.app import create as create_identity
from services.identity.config import IdentitySettings
from services.notifications.app import create as create_notifications
from shared.settings import Settings

SETTINGS = {"environment": "test", "namespace": "openapi-doc"}


def documents() -> dict[str, dict[str, Any]]:
    """Each service's OpenAPI document, built from the code (no server is started)."""
    apps = {
        "identity": create_identity(IdentitySettings(**SETTINGS, identity_bootstrap_operator_password="doc-only-pw")),
        "cards": create_cards(Settings(**SETTINGS)),  # type: ignore[arg-type]
        "bank": create_bank(Settings(**SETTINGS)),  # type: ignore[arg-type]
        "notifications": create_notifications(Settings(**SETTINGS)),  # type: ignore[arg-type]
    }
    return {name: app.openapi() for name, app in apps.items()}


DOCS = documents()
OPERATIONS = [(service, method.upper(), path, op)
              for service, doc in DOCS.items() for path, ops in doc["paths"].items() for method, op in ops.items()]
IDS = [f"{service} {method} {path}" for service, method, path, _ in OPERATIONS]


def resolved(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def has_example(doc: dict[str, Any], media: dict[str, Any]) -> bool:
    """An example beside the schema, or in the (referenced) schema itself."""
    if "example" in media or "examples" in media:
        return True
    schema = resolved(doc, media.get("schema", {}))
    return bool(schema.get("examples") or "example" in schema)


@pytest.mark.parametrize(("service", "method", "path", "op"), OPERATIONS, ids=IDS)
def test_a_request_body_has_an_example(service: str, method: str, path: str, op: dict[str, Any]) -> None:
    body = op.get("requestBody")
    if body is None:
        return
    assert body["content"], f"{service} {method} {path}: a body without a media type"
    for media_type, media in body["content"].items():
        assert has_example(DOCS[service], media), f"{service} {method} {path}: no example of its {media_type} body"


@pytest.mark.parametrize(("service", "method", "path", "op"), OPERATIONS, ids=IDS)
def test_a_success_answer_has_an_example(service: str, method: str, path: str, op: dict[str, Any]) -> None:
    successes = {status: r for status, r in op["responses"].items() if status.startswith("2")}
    assert successes, f"{service} {method} {path}: no success answer documented"
    for status, response in successes.items():
        if status == "204":
            assert not response.get("content"), f"{service} {method} {path}: a 204 has no body"
            continue
        assert response.get("content"), f"{service} {method} {path}: {status} has no content"
        for media_type, media in response["content"].items():
            assert has_example(DOCS[service], media), f"{service} {method} {path}: no example of its {status} " \
                                                      f"{media_type} answer"


@pytest.mark.parametrize(("service", "method", "path", "op"), OPERATIONS, ids=IDS)
def test_an_operation_needing_a_token_documents_401_and_403(service: str, method: str, path: str,
                                                             op: dict[str, Any]) -> None:
    if not op.get("security"):
        return
    missing = {"401", "403"} - set(op["responses"])
    assert not missing, f"{service} {method} {path}: needs a token but documents no {sorted(missing)}"


@pytest.mark.parametrize(("service", "method", "path", "op"), OPERATIONS, ids=IDS)
def test_every_documented_error_has_the_shared_error_body(service: str, method: str, path: str,
                                                          op: dict[str, Any]) -> None:
    for status, response in op["responses"].items():
        if status.startswith("4"):
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            assert schema.get("$ref", "").endswith("/Error"), f"{service} {method} {path}: {status} is not an Error"


def test_the_documents_cover_every_service_and_the_bank_errors() -> None:
    """The checks above ran on real documents, and the bank's routes say what they refuse with."""
    assert {s for s, *_ in OPERATIONS} == {"identity", "cards", "bank", "notifications"}
    bank = DOCS["bank"]["paths"]
    assert set(bank["/v1/cards/{card_number}/password/change"]["post"]["responses"]) >= {
        "401", "403", "404", "409", "422", "423"}
    assert set(bank["/v1/stamps"]["post"]["responses"]) >= {"401", "403", "404", "409", "422"}
    assert "200" in DOCS["cards"]["paths"]["/v1/loss-reports/online"]["post"]["responses"]


def test_the_balance_endpoint_offers_only_the_channels_it_accepts() -> None:
    """Issue 17: the enum offered ``pos``, which the endpoint refuses (the POS asks with the
    card password, POST /v1/pos/balance-inquiries)."""
    [channel] = [p for p in DOCS["bank"]["paths"]["/v1/cards/{card_number}/balance"]["get"]["parameters"]
                 if p["name"] == "channel"]
    options = channel["schema"]["anyOf"][0]
    assert sorted(resolved(DOCS["bank"], options)["enum"]) == ["counter", "online", "phone"]


def test_every_card_view_names_the_card_and_its_state_in_the_shared_vocabulary() -> None:
    """Issue 17: cards, bank and notifications tell a card's state with the same field names
    and the same words."""
    vocabulary = ["active", "cancelled", "lost", "pending_activation"]
    views = {"cards": "CardPublic", "bank": "CardPublic", "notifications": "RecipientCard"}
    for service, name in views.items():
        schema = DOCS[service]["components"]["schemas"][name]
        assert {"card_number", "state"} <= set(schema["required"]), (service, name)
        assert sorted(schema["properties"]["state"]["enum"]) == vocabulary, (service, name)
