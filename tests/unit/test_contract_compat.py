"""The compatibility check catches every kind of breaking change in test-only models."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel

from shared.contract.compat import compare_contract
from shared.contract.schemas import payload_schema

V1 = "cn.medcard.test.ParcelLost.v1"
V2 = "cn.medcard.test.ParcelLost.v2"


class ParcelLost(BaseModel):  # the published version
    parcel_id: str
    weight_g: int
    channel: Literal["online", "counter"]
    lost_on: date
    note: str | None = None


class FieldRemoved(BaseModel):
    parcel_id: str
    channel: Literal["online", "counter"]
    lost_on: date
    note: str | None = None


class FieldRetyped(BaseModel):
    parcel_id: str
    weight_g: str
    channel: Literal["online", "counter"]
    lost_on: date
    note: str | None = None


class ValuesChanged(BaseModel):
    parcel_id: str
    weight_g: int
    channel: Literal["online", "counter", "drone"]
    lost_on: date
    note: str | None = None


class NowRequired(BaseModel):
    parcel_id: str
    weight_g: int
    channel: Literal["online", "counter"]
    lost_on: date
    note: str | None
    insurer: str


class OptionalFieldAdded(BaseModel):
    parcel_id: str
    weight_g: int
    channel: Literal["online", "counter"]
    lost_on: date
    note: str | None = None
    insurer: str | None = None


def breaks(new_model: type[BaseModel], *, new_type: str = V1) -> list[str]:
    return compare_contract({V1: payload_schema(ParcelLost)}, {new_type: payload_schema(new_model)})


def test_an_unchanged_model_and_an_added_optional_field_break_nothing() -> None:
    assert breaks(ParcelLost) == []
    assert breaks(OptionalFieldAdded) == []


def test_a_removed_field_is_breaking() -> None:
    assert breaks(FieldRemoved) == [f"{V1}: field 'weight_g' was removed"]


def test_a_retyped_field_is_breaking() -> None:
    [message] = breaks(FieldRetyped)
    assert message.startswith(f"{V1}: field 'weight_g' was retyped from") and '"integer"' in message


def test_changed_allowed_values_are_a_retyped_field() -> None:
    [message] = breaks(ValuesChanged)
    assert message.startswith(f"{V1}: field 'channel' was retyped")


def test_a_newly_required_field_is_breaking_whether_new_or_formerly_optional() -> None:
    assert breaks(NowRequired) == [f"{V1}: field 'insurer' is newly required",
                                   f"{V1}: field 'note' is newly required"]


def test_a_renamed_or_removed_type_is_breaking() -> None:
    assert breaks(ParcelLost, new_type="cn.medcard.test.ParcelMissing.v1") == [
        f"{V1}: the type was renamed or removed without raising its version"]


def test_raising_the_version_allows_any_change() -> None:
    assert breaks(FieldRetyped, new_type=V2) == []
    assert compare_contract({V1: payload_schema(ParcelLost), V2: payload_schema(FieldRetyped)},
                            {V2: payload_schema(FieldRetyped)}) == []
