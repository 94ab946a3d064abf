"""Request and response bodies of the identity API."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.auth import Role
from shared.errors import Error, errors  # noqa: F401  (re-exported for the routes
from shared.money import FenAmount
from shared.text import IdNumberText, Secret, Text

from .clock import MAX_DAYS
from .domain import StaffRole

EXAMPLE_ID_NUMBER = "11010519491231002X"
Password = Annotated[str, Secret(128, min_length=8, description="At least 8 characters; stored only as an argon2 hash")]


class UnitCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Beijing Hongxing Machinery Co."}]})
    name: Annotated[str, Text(200)]


class UnitPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"unit_id": "U3f9a0c1d2e4b5a6c",
                                                               "name": "Beijing Hongxing Machinery Co."}]})
    unit_id: str
    name: str


class PersonCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "Wang Fang", "id_number": EXAMPLE_ID_NUMBER, "mobile": "13800138000",
        "household_number": "110105001234", "unit_id": "U3f9a0c1d2e4b5a6c", "language": "zh",
    }]})
    name: Annotated[str, Text(100)]
    id_number: IdNumberText
    mobile: Annotated[str, Text(20, description="Mainland mobile number: 11 digits starting with 13-19")]
    household_number: Annotated[str, Text(40, description="Household registration number")]
    unit_id: str | None = Field(None, description="The employer (insured unit)")
    language: Literal["zh", "en"] = "zh"


class PersonPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "person_id": "P3f9a0c1d2e4b5a6c", "name": "Wang Fang", "id_number_masked": "110***********002X",
        "mobile": "13800138000", "household_number": "110105001234", "unit_id": "U3f9a0c1d2e4b5a6c",
        "language": "zh", "account_number": "wangfang01", "contribution_months": ["2026-01"],
    }]})
    person_id: str
    name: str
    id_number_masked: str
    mobile: str
    household_number: str
    unit_id: str | None
    language: Literal["zh", "en"]
    account_number: str | None
    contribution_months: list[str]


class AccountCodeRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Wang Fang", "id_number": EXAMPLE_ID_NUMBER}]})
    name: Annotated[str, Text(100)]
    id_number: IdNumberText


class AccountCodeSent(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "detail": "if the name and ID number match the register, a code was sent by SMS to the mobile registered "
                  "for them", "expires_in": 300}]})
    detail: str
    expires_in: int = Field(description="Seconds the code lasts")


class AccountCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "Wang Fang", "id_number": EXAMPLE_ID_NUMBER, "code": "402913", "account_number": "wangfang01",
        "password": "correct horse battery",
    }]})
    name: Annotated[str, Text(100)]
    id_number: IdNumberText
    code: str = Field(pattern=r"^[0-9]{6}$", description="The one-time code sent by SMS to the registered mobile "
                                                        "(POST /v1/accounts/codes)")
    account_number: str = Field(pattern=r"^[A-Za-z0-9_-]{4,32}$", description="Chosen by the person; unique")
    password: Password


class AccountRecovery(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"id_number": EXAMPLE_ID_NUMBER}]})
    id_number: Annotated[str, Text(40, description="From the ID card shown at the counter")]


class AccountClosed(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"person_id": "P3f9a0c1d2e4b5a6c",
                                                               "closed_account_number": "wangfang01"}]})
    person_id: str
    closed_account_number: str


class AccountPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"person_id": "P3f9a0c1d2e4b5a6c",
                                                               "account_number": "wangfang01"}]})
    person_id: str
    account_number: str


class Login(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"account_number": "wangfang01",
                                                               "password": "correct horse battery"}]})
    account_number: Annotated[str, Text(32)]
    password: Annotated[str, Secret(128)]


class StaffLogin(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"username": "clerk-li",
                                                               "password": "counter-secret-1"}]})
    username: Annotated[str, Text(32)]
    password: Annotated[str, Secret(128)]


class TokenPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "access_token": "eyJhbGciOiJIUzI1NiJ9...", "token_type": "bearer", "expires_in": 3600,
        "role": "cardholder", "person_id": "P3f9a0c1d2e4b5a6c",
    }]})
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    role: Role
    person_id: str | None = None


class StaffCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"username": "clerk-li", "password": "counter-secret-1", "role": "clerk"},
        {"username": "pos-tongren-01", "password": "terminal-secret-1", "role": "merchant", "merchant_id": "M001"},
    ]})
    username: str = Field(pattern=r"^[a-z][a-z0-9_-]{2,31}$")
    password: Password
    role: StaffRole
    merchant_id: str | None = Field(None, description="Required for the merchant role (a POS terminal)")


class StaffPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"user_id": "S3f9a0c1d2e4b5a6c", "username": "clerk-li",
                                                               "role": "clerk", "merchant_id": None}]})
    user_id: str
    username: str
    role: StaffRole
    merchant_id: str | None


class ContributionItem(BaseModel):
    person_id: Annotated[str, Text(64)]
    amount_fen: Annotated[FenAmount, Field(description="Personal-account share in fen (at most 1,000,000 yuan)")]


class ContributionCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "unit_id": "U3f9a0c1d2e4b5a6c", "month": "2026-01",
        "items": [{"person_id": "P3f9a0c1d2e4b5a6c", "amount_fen": 12850}],
    }]})
    unit_id: Annotated[str, Text(64)]
    month: str = Field(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")
    items: list[ContributionItem] = Field(min_length=1, max_length=1000)


class ContributionPublic(BaseModel):
    contribution_id: str
    person_id: str
    amount_fen: int


class ContributionsPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "unit_id": "U3f9a0c1d2e4b5a6c", "month": "2026-01", "count": 1,
        "data": [{"contribution_id": "C202601P3f9a0c1d2e4b5a6c", "person_id": "P3f9a0c1d2e4b5a6c",
                  "amount_fen": 12850}],
    }]})
    unit_id: str
    month: str
    data: list[ContributionPublic]
    count: int


class ClockAdvance(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"days": 1}, {"to": "2026-02-01"},
                                                              {"start": "2026-01-05", "days": 21}]})
    days: int | None = Field(None, ge=1, le=MAX_DAYS)
    to: date | None = None
    start: date | None = Field(None, description="First call only: the date the clock starts from")

    @model_validator(mode="after")
    def _one_target(self) -> ClockAdvance:
        if (self.days is None) == (self.to is None):
            raise ValueError("give exactly one of 'days' and 'to'")
        return self


class ClockPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"date": "2026-01-26", "simulated": True}]})
    date: date
    simulated: bool = Field(description="False until the clock is first advanced: the real date in China")


class ClockAdvanced(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"previous_date": "2026-01-05", "date": "2026-02-02", "days": 28, "months_ended": ["2026-01"],
         "applied_everywhere": True, "services_behind": []},
        {"previous_date": "2026-02-02", "date": "2026-02-03", "days": 1, "months_ended": [],
         "applied_everywhere": False, "services_behind": ["bank"]},
    ]})
    previous_date: date
    date: date
    days: int
    months_ended: list[str]
    applied_everywhere: bool = Field(description=(
        "Every service (cards, bank, notifications) had applied the new business date before this answer: a "
        "command sent after it is dated with the new day (and a month end's transfers are done)"))
    services_behind: list[str] = Field(description=(
        "The services that had not yet applied it when the wait (MEDCARD_IDENTITY_CLOCK_FOLLOWERS_WAIT_SECONDS) "
        "ran out: until they do, their commands still carry the earlier date; their /ready tells their "
        "business_date"))
