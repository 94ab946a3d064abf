"""Numbers are ASCII digits, amounts JSON integers, names free of control characters (pure).

Python's ``\\d``, ``int()`` and ``str.isdigit`` and pydantic's patterns all take fullwidth and
other scripts' digits: a fullwidth copy of a registered ID number was registered again."""

from __future__ import annotations

import json
from datetime import date

import pytest
from pydantic import ValidationError

from services.bank.schemas import PasswordSet, PosAuthorisationCreate
from services.identity.schemas import ContributionItem, PersonCreate
from shared.ids import (
    InvalidIdNumber,
    luhn_valid,
    make_id_number,
    new_card_number,
    validate_id_number,
    validate_mobile,
)
from shared.text import not_blank

FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
ID_NUMBER = make_id_number("110105", date(1949, 12, 31), 2)
POS = {"card_number": "6216610000000000018", "pin": "246810", "merchant_id": "M-PH", "amount_fen": 100,
       "transaction_id": "T1"}


@pytest.mark.parametrize("digits", [
    ID_NUMBER.translate(FULLWIDTH), ID_NUMBER[:-1].translate(FULLWIDTH) + ID_NUMBER[-1],
    "١١٠١٠٥١٩٤٩١٢٣١٠٠٢X",  # Arabic-Indic digits
])
def test_an_id_number_in_other_digits_is_refused(digits: str) -> None:
    with pytest.raises(InvalidIdNumber, match="17 digits"):
        validate_id_number(digits)
    assert validate_id_number(ID_NUMBER) == ID_NUMBER


def test_mobiles_and_card_numbers_are_ascii_digits() -> None:
    with pytest.raises(ValueError):
        validate_mobile("13800138000".translate(FULLWIDTH))
    card = new_card_number()
    assert luhn_valid(card) and not luhn_valid(card.translate(FULLWIDTH))


@pytest.mark.parametrize(("field", "value"), [
    ("pin", "２４６８１０"), ("pin", "٢٤٦٨١٠"), ("card_number", "6216610000000000018".translate(FULLWIDTH)),
    ("amount_fen", "100"), ("amount_fen", True), ("amount_fen", 100.0), ("amount_fen", 1e3),
])
def test_pos_numbers_and_amounts_accept_ascii_digits_and_json_integers_only(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        PosAuthorisationCreate.model_validate_json(json.dumps({**POS, field: value}))
    assert PosAuthorisationCreate.model_validate_json(json.dumps(POS)).amount_fen == 100
    with pytest.raises(ValidationError):
        PasswordSet.model_validate_json(json.dumps({"pin": "２４６８１０"}))


@pytest.mark.parametrize("amount", ["12850", True, 12850.0])
def test_a_contribution_amount_is_a_json_integer(amount: object) -> None:
    with pytest.raises(ValidationError, match="amount_fen"):
        ContributionItem.model_validate_json(json.dumps({"person_id": "P1", "amount_fen": amount}))


@pytest.mark.parametrize("name", ["Wang\x00Fang", "Wang\x1b]0;pwned\x07Fang", "Wang\nFang", "Wang\u202eFang",
                                  "Wang\u200bFang"])
def test_names_with_nul_control_or_format_characters_are_refused(name: str) -> None:
    person = {"name": name, "id_number": ID_NUMBER, "mobile": "13800138000", "household_number": "H1"}
    with pytest.raises(ValidationError, match="control or format characters"):
        PersonCreate.model_validate(person)
    with pytest.raises(ValueError, match="control or format characters"):
        not_blank(name)
    assert PersonCreate.model_validate({**person, "name": " 王 芳 "}).name == "王 芳"
