"""Resident ID numbers (GB 11643) as the identity service checks them at registration."""

from __future__ import annotations

from datetime import date

import pytest

from shared.domain import Invalid
from shared.ids import checked_id_number, id_check_digit, id_digest, make_id_number, mask_id_number, presented_digest

VALID = "11010519491231002X"


def test_a_valid_id_number_is_accepted_and_normalised() -> None:
    assert checked_id_number(" 11010519491231002x ") == VALID


def test_a_generated_id_number_carries_its_check_digit() -> None:
    number = make_id_number("110105", date(1990, 3, 7), 123)
    assert checked_id_number(number) == number
    assert number[-1] == id_check_digit(number[:17])


def test_a_wrong_check_digit_is_refused_with_the_expected_one() -> None:
    with pytest.raises(Invalid, match="check digit is 3, expected X"):
        checked_id_number(VALID[:-1] + "3")


@pytest.mark.parametrize("birth", ["19490230", "19491301", "00000000"])
def test_an_impossible_birth_date_is_refused(birth: str) -> None:
    first17 = "110105" + birth + "002"
    with pytest.raises(Invalid, match=f"invalid birth date {birth}"):
        checked_id_number(first17 + id_check_digit(first17))


@pytest.mark.parametrize("number", [VALID[:-1], VALID + "1", "", "11010519491231"])
def test_a_number_of_the_wrong_length_is_refused(number: str) -> None:
    with pytest.raises(Invalid, match="18 characters"):
        checked_id_number(number)


def test_letters_other_than_a_final_x_are_refused() -> None:
    with pytest.raises(Invalid, match="17 digits"):
        checked_id_number("1101051949123100AX")


def test_a_masked_id_number_keeps_only_the_first_3_and_last_4_characters() -> None:
    assert mask_id_number(VALID) == "110***********002X"


@pytest.mark.parametrize(("number", "reason"), [
    ("110105209901010016", "birth date 2099-01-01 after today"),
    ("110105100001010011", "birth date 1000-01-01 before 1900-01-01"),
    ("990105198005170420", "first two digits 99 are not a province-level code of GB/T 2260"),
])
def test_an_implausible_id_number_is_a_422_saying_why(number: str, reason: str) -> None:
    first17 = number[:17]
    with pytest.raises(Invalid, match=reason):
        checked_id_number(first17 + id_check_digit(first17))


def test_a_presented_id_number_is_checked_then_digested_the_one_way_every_service_does() -> None:
    number = make_id_number("110101", date(1990, 1, 1), 123)
    assert presented_digest("k", number.lower()) == id_digest("k", number)
    with pytest.raises(Invalid, match="check digit"):
        presented_digest("k", number[:17] + ("0" if number[17] != "0" else "1"))
