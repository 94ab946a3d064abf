"""Events of the identity service (the agency's register) and of the business clock."""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar, Literal

from pydantic import Field

from .base import EventData, Personal

Date = date
"""``date`` under a name a field called ``date`` does not shadow."""

Role = Literal["cardholder", "clerk", "teller", "operator", "merchant"]
Month = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")


class _Identity(EventData):
    service: ClassVar[str] = "identity"


class InsuredUnitRegistered(_Identity):
    unit_id: str
    name: str


class PersonRegistered(_Identity):
    person_id: Personal
    name: Personal
    id_number_masked: Personal = Field(description="Resident ID number, masked: first 3 and last 4 characters")
    id_number_digest: Personal = Field(
        description="Keyed HMAC-SHA256 of the ID number: lets services check a presented ID card "
        "without ever seeing the number; useless without the ecosystem's key")
    mobile: Personal = Field(description="Mainland mobile number, used to reach the person")
    unit_id: str | None
    language: Literal["zh", "en"] = "zh"


class OnlineAccountOpened(_Identity):
    person_id: Personal
    account_number: Personal


class OnlineAccountCodeIssued(_Identity):
    """A one-time code for the person's registered mobile (opening an online account). The
    code travels only sealed for the SMS channel: AES-256-GCM under a key that identity and
    notifications hold (``MEDCARD_OTP_KEY``), bound to the person id."""

    person_id: Personal
    code_sealed: str = Field(description="The code, sealed for the SMS channel (v1.<base64url nonce+ciphertext>); "
                                         "useless without the ecosystem's one-time-code key")
    purpose: Literal["open_account"] = "open_account"
    expires_at: datetime


class OnlineAccountClosed(_Identity):
    """An online account closed at the agency counter on the holder's ID card (one opened by
    someone else): its account number is free again and the holder may open a new one."""

    person_id: Personal
    account_number: Personal
    reason: Literal["recovered_at_counter"] = "recovered_at_counter"


class OnlineAccountLocked(_Identity):
    person_id: Personal
    account_number: Personal
    failures: int
    locked_until: datetime


class StaffUserCreated(_Identity):
    user_id: Personal
    username: Personal
    role: Role
    merchant_id: str | None = Field(None, description="The merchant a POS-terminal user acts for (role merchant)")


class ContributionPaid(_Identity):
    contribution_id: str
    person_id: Personal
    unit_id: str
    month: str = Month
    amount_fen: int = Field(gt=0, description="Personal-account share, integer fen")


class _Clock(EventData):
    service: ClassVar[str] = "clock"


class BusinessDateAdvanced(_Clock):
    date: Date
    previous_date: Date


class MonthEnded(_Clock):
    month: str = Month
    closing_date: date
