"""No required text field of any request body of any service accepts only blanks (issue 17:
a letter of proof "   " was accepted). Every body model of the four services is found from
their routes, each required text field of it (and of the models inside it) is given blanks
in the model's own documented example, and the model must refuse it naming that field."""

from __future__ import annotations

from typing import Annotated, Any, get_args, get_origin

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ValidationError

from services.bank.app import create as create_bank
from services.cards.app import create as create_cards
from services.identity.app import create as create_identity
from services.identity.config import IdentitySettings
from services.notifications.app import create as create_notifications
from shared.settings import Settings
from shared.text import Secret, Text
from tests.unit.test_openapi_documents import SETTINGS

BLANKS = ("   ", "\t \n", "\u3000")
"""Spaces, tabs and a newline, and the ideographic space of Chinese input methods."""


def body_models() -> dict[str, type[BaseModel]]:
    """Every request body model of the four services, by ``service METHOD path``."""
    apps = {
        "identity": create_identity(IdentitySettings(**SETTINGS, identity_bootstrap_operator_password="doc-only-pw")),
        "cards": create_cards(Settings(**SETTINGS)),  # type: ignore[arg-type]
        "bank": create_bank(Settings(**SETTINGS)),  # type: ignore[arg-type]
        "notifications": create_notifications(Settings(**SETTINGS)),  # type: ignore[arg-type]
    }
    found: dict[str, type[BaseModel]] = {}
    for service, app in apps.items():
        for context in iter_route_contexts(app.routes):
            route = context.original_route
            if isinstance(route, APIRoute) and route.body_field is not None:
                model = route.body_field.field_info.annotation
                assert isinstance(model, type) and issubclass(model, BaseModel)
                found[f"{service} {'/'.join(sorted(route.methods))} {route.path}"] = model
    return found


MODELS = body_models()


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, directly or as the items of a list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is list:
        return nested_model(get_args(annotation)[0])
    return None


def required_text_paths(model: type[BaseModel], example: dict[str, Any],
                        prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Where the example holds the text of a required field (inside nested models too)."""
    paths: list[tuple[str | int, ...]] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        value = example.get(key)
        inner = nested_model(field.annotation)
        if inner is not None and isinstance(value, list):
            for i, item in enumerate(value[:1]):
                paths += required_text_paths(inner, item, (*prefix, key, i))
        elif inner is not None and isinstance(value, dict):
            paths += required_text_paths(inner, value, (*prefix, key))
        elif field.is_required() and isinstance(value, str):
            paths.append((*prefix, key))
    return paths


def with_value(example: dict[str, Any], path: tuple[str | int, ...], value: str) -> dict[str, Any]:
    copy: Any = __import__("copy").deepcopy(example)
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copy  # type: ignore[no-any-return]


def example_of(model: type[BaseModel]) -> dict[str, Any]:
    examples = (model.model_config.get("json_schema_extra") or {}).get("examples")  # type: ignore[union-attr]
    assert examples, f"{model.__name__} has no documented example"
    return dict(examples[0])


CASES = [(where, path) for where, model in MODELS.items()
         for path in required_text_paths(model, example_of(model))]


def test_every_body_model_with_text_is_checked() -> None:
    checked = {where for where, _ in CASES}
    assert "cards POST /v1/loss-reports/bank" in checked and "identity POST /v1/persons" in checked
    assert len(CASES) >= 30, CASES


@pytest.mark.parametrize("model", sorted({m.__name__: m for m in MODELS.values()}.values(), key=lambda m: m.__name__),
                         ids=lambda m: m.__name__)
def test_every_documented_example_is_accepted(model: type[BaseModel]) -> None:
    model.model_validate(example_of(model))


@pytest.mark.parametrize(("where", "path"), CASES, ids=[f"{w} {'.'.join(map(str, p))}" for w, p in CASES])
@pytest.mark.parametrize("blanks", BLANKS, ids=["spaces", "whitespace", "ideographic space"])
def test_a_required_text_of_only_blanks_is_refused_naming_the_field(where: str, path: tuple[str | int, ...],
                                                                    blanks: str) -> None:
    model = MODELS[where]
    with pytest.raises(ValidationError) as err:
        model.model_validate(with_value(example_of(model), path, blanks))
    assert any(tuple(e["loc"]) == path for e in err.value.errors()), err.value.errors()


def test_text_is_stored_stripped_and_a_secret_as_typed() -> None:
    from pydantic import TypeAdapter

    assert TypeAdapter(Annotated[str, Text(100)]).validate_python("  Wang Fang ") == "Wang Fang"
    assert TypeAdapter(Annotated[str, Secret(128)]).validate_python(" my pass phrase ") == " my pass phrase "
    for blanks in BLANKS:
        with pytest.raises(ValidationError, match="must not be blank"):
            TypeAdapter(Annotated[str, Secret(128)]).validate_python(blanks)
    with pytest.raises(ValidationError, match="String should have at most 5 characters"):
        TypeAdapter(Annotated[str, Text(5)]).validate_python("Wang Fang")  # the limit before the blank check
