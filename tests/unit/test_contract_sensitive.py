"""Every payload field whose name says "personal data" is classified in the contract, or
its exemption under the rule of the contract's description is written down here."""

from __future__ import annotations

import json
import re

from pydantic import BaseModel

from shared.contract.asyncapi import PERSONAL_HEADERS, SENSITIVE_DATA
from shared.contract.generate import CONTRACT_DIR
from shared.events import REGISTRY, MaybePersonal, Personal

PERSONAL_NAME = re.compile(
    r"(^|_)("
    r"person|name|username|user_id|mobile|phone|email|address|birth|id_number"  # who someone is
    r"|card_number|replaces|replaced_by|account_id|account_number"  # their cards and accounts
    r"|voucher|receipt|letter"  # references handed to them
    r"|error|text|note|comment"  # free text that may echo any of it
    r")(_|$)"
)

CASE_REFERENCES = {
    "voucher": "loss confirmation number: looking it up also takes the ID number",
    "receipt_number": "replacement receipt: looking it up takes the holder's login or a staff role",
    "letter_reference": "the employer's letter of proof, a document reference",
}
ORGANISATIONS = {
    ("InsuredUnitRegistered", "name"): "an employer's name",
    ("MerchantRegistered", "name"): "a hospital's, pharmacy's or shop's name",
}


def unclassified(model: type[BaseModel], sensitive: tuple[str, ...]) -> list[str]:
    """Fields named like personal data that are neither classified nor exempted by the rule."""
    return [name for name in model.model_fields
            if PERSONAL_NAME.search(name) and name not in sensitive
            and name not in CASE_REFERENCES and (model.__name__, name) not in ORGANISATIONS]


def test_every_field_named_like_personal_data_is_classified() -> None:
    missing = {t: fields for t, cls in REGISTRY.items() if (fields := unclassified(cls, cls.sensitive))}
    assert missing == {}, "mark these fields Personal (shared.events.base), or exempt them here with the rule"


def test_the_check_catches_an_unmarked_field_and_accepts_a_marked_one() -> None:
    class CardFound(BaseModel):
        holder_person_id: str
        card_number: Personal
        old_card_number: MaybePersonal = None
        mobile_phone: str
        found_at: str

    assert unclassified(CardFound, ("card_number", "old_card_number")) == ["holder_person_id", "mobile_phone"]


def test_the_exemptions_are_the_ones_the_contract_writes_down() -> None:
    for field in CASE_REFERENCES:
        assert field.split("_")[0] in SENSITIVE_DATA
    assert "organisations" in SENSITIVE_DATA
    person_events = [cls for cls in REGISTRY.values() if "person_id" in cls.model_fields]
    assert person_events and all("person_id" in cls.sensitive for cls in person_events)


def test_the_published_files_list_the_classified_fields_and_headers() -> None:
    asyncapi = json.loads((CONTRACT_DIR / "asyncapi.json").read_text(encoding="utf-8"))
    for event_type, cls in REGISTRY.items():
        schema = json.loads((CONTRACT_DIR / "schemas" / f"{event_type}.json").read_text(encoding="utf-8"))
        assert schema["x-sensitive"] == list(cls.sensitive)
        message = asyncapi["components"]["messages"][event_type]
        assert message["x-sensitive"] == list(cls.sensitive)
        assert message["x-sensitive-headers"] == (list(PERSONAL_HEADERS) if cls.sensitive else [])
    moved = asyncapi["components"]["messages"]["cn.medcard.bank.AccountMovedToCard.v1"]
    assert {"person_id", "account_id", "old_card_number", "new_card_number"} == set(moved["x-sensitive"])
    clock = asyncapi["components"]["messages"]["cn.medcard.clock.MonthEnded.v1"]
    assert clock["x-sensitive"] == [] and clock["x-sensitive-headers"] == []
