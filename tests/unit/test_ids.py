"""Resident ID numbers (GB 11643), card numbers (Luhn) and masking."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from shared.calendar import real_today
from shared.ids import (
    PROVINCES, InvalidIdNumber, id_check_digit, id_digest, luhn_valid, make_id_number, mask_id_number,
    mask_mobile, new_card_number, validate_id_number, validate_mobile,
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


def with_check_digit(first17: str) -> str:
    return first17 + id_check_digit(first17)


TODAY = date(2026, 3, 16)


@pytest.mark.parametrize(("birth", "reason"), [
    ("20990101", "birth date 2099-01-01 after today (2026-03-16)"),
    ("20260317", "birth date 2026-03-17 after today (2026-03-16)"),
    ("10000101", "birth date 1000-01-01 before 1900-01-01"),
    ("18991231", "birth date 1899-12-31 before 1900-01-01"),
])
def test_a_birth_date_in_the_future_or_before_1900_is_refused(birth: str, reason: str) -> None:
    with pytest.raises(InvalidIdNumber, match=re.escape(reason)):
        validate_id_number(with_check_digit(f"110105{birth}002"), today=TODAY)


@pytest.mark.parametrize("birth", ["19000101", "20260316"])
def test_a_birth_date_from_1900_to_today_is_accepted(birth: str) -> None:
    number = with_check_digit(f"110105{birth}002")
    assert validate_id_number(number, today=TODAY) == number


def test_by_default_a_birth_date_is_checked_against_today_in_china() -> None:
    tomorrow = real_today() + timedelta(days=1)
    with pytest.raises(InvalidIdNumber, match="after today"):
        validate_id_number(with_check_digit(f"110105{tomorrow:%Y%m%d}002"))
    assert validate_id_number(with_check_digit(f"110105{real_today():%Y%m%d}002"))


@pytest.mark.parametrize("province", [p for p in range(100) if p not in PROVINCES])
def test_a_region_outside_the_province_codes_is_refused(province: int) -> None:
    number = with_check_digit(f"{province:02d}010519800517042")
    with pytest.raises(InvalidIdNumber, match=f"region code {province:02d}0105, whose first two digits "
                                              f"{province:02d} are not a province-level code of GB/T 2260"):
        validate_id_number(number)


@pytest.mark.parametrize("province", sorted(PROVINCES))
def test_every_province_code_is_accepted(province: int) -> None:
    number = with_check_digit(f"{province:02d}0105198005170420"[:17])
    assert validate_id_number(number) == number


def test_the_province_codes_are_those_of_gb_t_2260() -> None:
    ranges = [(11, 15), (21, 23), (31, 37), (41, 46), (50, 54), (61, 65), (71, 71), (81, 82)]
    assert PROVINCES == {p for low, high in ranges for p in range(low, high + 1)}


@pytest.mark.parametrize(("region", "birth"), [("990101", date(1980, 1, 1)), ("110105", date(2999, 1, 1))])
def test_make_id_number_refuses_to_make_an_invalid_number(region: str, birth: date) -> None:
    with pytest.raises(InvalidIdNumber):
        make_id_number(region, birth, 1)


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


def test_the_bench_makes_valid_id_numbers_for_its_largest_run() -> None:
    from medcard.bench.cardholders import _person

    numbers = {_person(i).id_number for i in range(0, 1_000_000, 997)}
    assert all(validate_id_number(n) == n for n in numbers) and len(numbers) == len(range(0, 1_000_000, 997))
