"""Resident ID numbers (GB 11643), card numbers (Luhn) and masking."""

from __future__ import annotations

from datetime import date

import pytest

from shared.ids import (
    InvalidIdNumber, id_digest, luhn_valid, make_id_number, mask_id_number, mask_mobile, new_card_number,
    validate_id_number, validate_mobile,
)

VALID = "11010519491231002X"  # the standard's own example


def test_the_standards_example_is_valid() -> None:
    assert validate_id_number(VALID) == VALID


def test_a_lowercase_x_is_normalised() -> None:
    assert validate_id_number(VALID.lower()) == VALID


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("110105194912310021", "check digit is 1, expected X"),
        ("11010519491331002X", "invalid birth date 19491331"),
        ("1101051949123100", "must have 18 characters, got 16"),
        ("11010519491231002Y", "17 digits followed by a digit or X"),
    ],
)
def test_a_bad_id_number_is_refused_with_the_reason(value: str, reason: str) -> None:
    with pytest.raises(InvalidIdNumber, match=reason):
        validate_id_number(value)


def test_made_id_numbers_validate() -> None:
    assert validate_id_number(make_id_number("310101", date(1990, 2, 28), 17))


def test_masking_keeps_only_the_region_start_and_the_last_four() -> None:
    assert mask_id_number(VALID) == "110***********002X"
    assert mask_mobile("13812345678") == "138****5678"


def test_the_id_digest_depends_on_the_key_and_not_on_case() -> None:
    assert id_digest("k1", VALID) == id_digest("k1", VALID.lower())
    assert id_digest("k1", VALID) != id_digest("k2", VALID)


def test_new_card_numbers_pass_luhn_and_a_changed_digit_fails() -> None:
    number = new_card_number()
    assert len(number) == 19 and luhn_valid(number)
    broken = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert not luhn_valid(broken)


@pytest.mark.parametrize("mobile", ["12812345678", "1381234567", "138123456789", "+8613812345678"])
def test_a_bad_mobile_is_refused(mobile: str) -> None:
    with pytest.raises(ValueError, match="mainland format"):
        validate_mobile(mobile)
