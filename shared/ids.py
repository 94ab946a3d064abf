"""Identifiers: resident ID numbers (GB 11643), card numbers (Luhn), masking, new ids."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import date
from typing import Annotated

from pydantic import AfterValidator

from .calendar import real_today
from .domain import Invalid
from .text import IdNumberText

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
# ASCII digits only: Python's \d (and int()) also take fullwidth and other scripts' digits,
# which would make a second "valid" spelling of the same ID number or mobile.
_ID_SHAPE = re.compile(r"^[0-9]{17}[0-9X]$")
_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
PROVINCES = frozenset({
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
    50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
})
"""First two digits of the province-level codes of GB/T 2260 (71 Taiwan, 81 Hong Kong, 82 Macao)."""
EARLIEST_BIRTH = date(1900, 1, 1)


class InvalidIdNumber(ValueError):
    """A resident ID number that fails GB 11643."""


def id_check_digit(first17: str) -> str:
    return _ID_CHECK[sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=False)) % 11]


def validate_id_number(value: str, today: date | None = None) -> str:
    """Return the normalised 18-character ID number or raise InvalidIdNumber saying why.
    The birth date must be a real date from 1900 to ``today`` (default: today in China)."""
    v = value.strip().upper()
    if len(v) != 18:
        raise InvalidIdNumber(f"resident ID number must have 18 characters, got {len(v)}")
    if not _ID_SHAPE.match(v):
        raise InvalidIdNumber("resident ID number must be 17 digits followed by a digit or X")
    if int(v[:2]) not in PROVINCES:
        raise InvalidIdNumber(f"resident ID number has region code {v[:6]}, whose first two digits {v[:2]} are "
                              "not a province-level code of GB/T 2260")
    try:
        birth = date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        raise InvalidIdNumber(f"resident ID number has an invalid birth date {v[6:14]}") from None
    if birth < EARLIEST_BIRTH:
        raise InvalidIdNumber(f"resident ID number has a birth date {birth} before {EARLIEST_BIRTH}")
    today = today or real_today()
    if birth > today:
        raise InvalidIdNumber(f"resident ID number has a birth date {birth} after today ({today})")
    expected = id_check_digit(v[:17])
    if v[17] != expected:
        raise InvalidIdNumber(f"resident ID number check digit is {v[17]}, expected {expected}")
    return v


IdNumber = Annotated[IdNumberText, AfterValidator(lambda value: validate_id_number(value))]  # noqa: PLW0108 - defined below
"""An ID number in a request body, checked there (GB 11643; a 422 saying what is wrong) and
normalised: a well-formed number of someone else is then the service's 403."""


def id_digest(key: str, id_number: str) -> str:
    """Keyed digest of a (normalised) ID number: comparable, not reversible without the key."""
    return hmac.new(key.encode(), id_number.strip().upper().encode(), hashlib.sha256).hexdigest()


def checked_id_number(value: str) -> str:
    """The normalised ID number, or ``Invalid`` (a 422) saying precisely what is wrong with it."""
    try:
        return validate_id_number(value)
    except InvalidIdNumber as err:
        raise Invalid(str(err)) from None


def presented_digest(key: str, id_number: str) -> str:
    """The digest of an ID number a person presents (at a counter, online, at the bank), to
    compare with the one on record; ``Invalid`` if it is malformed."""
    return id_digest(key, checked_id_number(id_number))


def make_id_number(region: str, birth: date, serial: int) -> str:
    """Build a valid ID number (for the simulation and tests): the region's first two digits
    a province (PROVINCES), the birth date in 1900..today; InvalidIdNumber otherwise."""
    first17 = f"{region}{birth:%Y%m%d}{serial:03d}"
    return validate_id_number(first17 + id_check_digit(first17))


def mask_id_number(v: str) -> str:
    """Keep the region's first 3 and the last 4 characters: 110***********123X."""
    return v[:3] + "*" * (len(v) - 7) + v[-4:]


def validate_mobile(v: str) -> str:
    v = v.strip()
    if not _MOBILE.match(v):
        raise ValueError("mobile phone must be 11 digits starting with 13-19 (mainland format)")
    return v


def mask_mobile(v: str) -> str:
    return v[:3] + "****" + v[-4:]


def luhn_check_digit(payload: str) -> str:
    total = 0
    for i, c in enumerate(reversed(payload)):
        d = int(c)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return number.isascii() and number.isdigit() and len(number) > 1 and luhn_check_digit(number[:-1]) == number[-1]


CARD_BIN = "621661"  # the agent bank's debit-card BIN


def new_card_number() -> str:
    """A 19-digit debit-card number with a Luhn check digit."""
    payload = CARD_BIN + "".join(str(secrets.randbelow(10)) for _ in range(12))
    return payload + luhn_check_digit(payload)


def new_id(prefix: str, nbytes: int = 8) -> str:
    """A short random identifier such as P3f9a0c1d2e4b5a6c."""
    return prefix + secrets.token_hex(nbytes)


def new_reference(prefix: str) -> str:
    """A human-friendly reference (voucher, receipt): prefix + 12 digits."""
    return prefix + "".join(str(secrets.randbelow(10)) for _ in range(12))
