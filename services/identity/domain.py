"""The agency's register as pure rules: insured units, persons, online accounts,
staff users, logins and contributions. No I/O: each command is a ``decide`` function
from the current state to a Decision (new state, events, result)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, TypeVar

from pydantic import BaseModel

from shared.domain import Conflict, Decision, Forbidden, Invalid, Locked, NotFound
from shared.events import (
    ContributionPaid,
    EventData,
    InsuredUnitRegistered,
    OnlineAccountClosed,
    OnlineAccountCodeIssued,
    OnlineAccountLocked,
    OnlineAccountOpened,
    PersonRegistered,
    StaffUserCreated,
)
from shared.ids import validate_mobile

StaffRole = Literal["clerk", "teller", "operator", "merchant"]
NO_MATCH = "name and ID number do not match the register"
CODE_REFUSED = ("name, ID number and code do not match, or the code expired or was tried too often: "
                "ask for a new code")
"""The one answer to every refused account opening: whether the person exists, has a code,
or mistyped it is not told."""
ACCOUNT_EXISTS = ("this person already has an online account; if you did not open it, have it closed at the "
                  "agency counter with your ID card, then open yours")
CODE_DIGITS = 6


class IdNumberTaken(Conflict):
    """One person per resident ID number."""

    def __init__(self) -> None:
        super().__init__("a person with this ID number is already registered")


class UnknownUnit(Invalid):
    """A person belongs to a registered insured unit, or to none."""

    def __init__(self, unit_id: str) -> None:
        super().__init__(f"insured unit {unit_id} is not registered")


class CodeRefused(Invalid):
    """The one answer to every refused account opening (see ``CODE_REFUSED``)."""

    def __init__(self) -> None:
        super().__init__(CODE_REFUSED)


class AccountExists(Conflict):
    """One online account per person."""

    def __init__(self) -> None:
        super().__init__(ACCOUNT_EXISTS)


class IdCardMismatch(Forbidden):
    """The counter closes an account only on the holder's own ID card."""

    def __init__(self) -> None:
        super().__init__("the ID number does not match the person")


class NoOnlineAccount(Conflict):
    """Only an open online account can be closed."""

    def __init__(self) -> None:
        super().__init__("this person has no online account")


class LoginLocked(Locked):
    """Too many failed logins in a row: no login while the lock lasts."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"too many failed logins: locked until {until.isoformat()}")


class UsernameTaken(Conflict):
    """One staff user per username."""

    def __init__(self, username: str) -> None:
        super().__init__(f"username {username} is taken")


class MerchantIdMismatch(Invalid):
    """A merchant's terminal has its merchant's id, and no other staff user has one."""

    def __init__(self) -> None:
        super().__init__("a merchant_id is required for the merchant role and only for it")


class RepeatedPerson(Invalid):
    """A unit's contribution for a month names each of its persons once."""

    def __init__(self) -> None:
        super().__init__("each person may appear only once in a contribution")


class UnregisteredPerson(Invalid):
    """A contribution is paid for a registered person."""

    def __init__(self, person_id: str) -> None:
        super().__init__(f"person {person_id} is not registered")


class NotInUnit(Invalid):
    """A contribution is paid by the person's own unit."""

    def __init__(self, person_id: str, unit_id: str) -> None:
        super().__init__(f"person {person_id} does not belong to insured unit {unit_id}")


class MonthAlreadyPaid(Conflict):
    """One contribution per person per month."""

    def __init__(self, person_id: str, month: str) -> None:
        super().__init__(f"the contribution for {month} is already paid for person {person_id}")


class InsuredUnit(BaseModel):
    unit_id: str
    name: str


class Credentials(BaseModel):
    """A password hash and the count of failed logins in a row."""

    password_hash: str
    failures: int = 0
    locked_until: datetime | None = None


class OnlineAccount(Credentials):
    account_number: str


class AccountCode(BaseModel):
    """A one-time code sent to the registered mobile: only its keyed digest is kept."""

    code_digest: str
    expires_at: datetime
    tries: int = 0


class Person(BaseModel):
    person_id: str
    name: str
    id_number_digest: str
    id_number_masked: str
    mobile: str
    household_number: str
    unit_id: str | None = None
    language: Literal["zh", "en"] = "zh"
    account: OnlineAccount | None = None
    account_code: AccountCode | None = None
    contributions: dict[str, str] = {}
    """Month (YYYY-MM) -> contribution id."""


class StaffUser(Credentials):
    user_id: str
    username: str
    role: StaffRole
    merchant_id: str | None = None


@dataclass(frozen=True)
class LoginPolicy:
    max_failures: int
    lock_seconds: int


@dataclass(frozen=True)
class LoginResult:
    ok: bool
    locked_until: datetime | None = None


C = TypeVar("C", bound=Credentials)


def checked_mobile(value: str) -> str:
    """The normalised mobile number, or a 422 saying what is wrong with it."""
    try:
        return validate_mobile(value)
    except ValueError as err:
        raise Invalid(str(err)) from None


def staff_key(username: str) -> str:
    """Aggregate id (and Kafka key) of a staff user: never equal to a person or unit id."""
    return f"staff:{username}"


def check_id_number_free(registered: Person | None) -> None:
    """Raise unless no person is registered with the ID number (``registered``: who is)."""
    if registered is not None:
        raise IdNumberTaken()


def check_unit_registered(unit: InsuredUnit | None, unit_id: str) -> None:
    """Raise unless the insured unit ``unit_id`` (``unit`` as found) is registered."""
    if unit is None:
        raise UnknownUnit(unit_id)


def register_unit(unit: InsuredUnit) -> Callable[[InsuredUnit | None], Decision[InsuredUnit]]:
    def decide(state: InsuredUnit | None) -> Decision[InsuredUnit]:
        if state is not None:
            raise Conflict(f"insured unit {unit.unit_id} is already registered")
        return Decision(unit, [InsuredUnitRegistered(unit_id=unit.unit_id, name=unit.name)], unit)
    return decide


def register_person(person: Person) -> Callable[[Person | None], Decision[Person]]:
    def decide(state: Person | None) -> Decision[Person]:
        if state is not None:
            raise Conflict(f"person {person.person_id} is already registered")
        event = PersonRegistered(
            person_id=person.person_id, name=person.name, id_number_masked=person.id_number_masked,
            id_number_digest=person.id_number_digest, mobile=person.mobile, unit_id=person.unit_id,
            language=person.language,
        )
        return Decision(person, [event], person)
    return decide


def new_code() -> str:
    """A fresh one-time code: six random decimal digits."""
    return f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"


def code_digest(key: str, person_id: str, code: str) -> str:
    """Keyed digest of a person's code: what identity keeps instead of the code."""
    return hmac.new(key.encode(), f"account-code\0{person_id}\0{code}".encode(), hashlib.sha256).hexdigest()


def _names_match(person: Person, name: str) -> bool:
    return person.name == name.strip()


def _live_code(person: Person, now: datetime) -> AccountCode | None:
    code = person.account_code
    return code if code is not None and code.expires_at > now else None


def issue_account_code(*, name: str, digest: str, sealed: str, now: datetime,
                       ttl_seconds: int) -> Callable[[Person | None], Decision[Person]]:
    """Step 1 of opening an online account: a new code for the registered mobile (it replaces
    any earlier one). A name that does not match changes nothing, silently: the caller
    answers the same either way."""
    def decide(person: Person | None) -> Decision[Person]:
        if person is None or not _names_match(person, name):
            return Decision(person, [], False)
        expires = now + timedelta(seconds=ttl_seconds)
        new = person.model_copy(update={"account_code": AccountCode(code_digest=digest, expires_at=expires)})
        return Decision(new, [OnlineAccountCodeIssued(person_id=person.person_id, code_sealed=sealed,
                                                      expires_at=expires)], True)
    return decide


def check_account_code(*, name: str, digest: str, now: datetime,
                       max_tries: int) -> Callable[[Person | None], Decision[Person]]:
    """Whether the code is right (result); a wrong one counts a try, and the last try voids it."""
    def decide(person: Person | None) -> Decision[Person]:
        if person is None or not _names_match(person, name):
            return Decision(person, [], False)
        code = _live_code(person, now)
        if code is None:
            return Decision(person, [], False)
        if hmac.compare_digest(code.code_digest, digest):
            return Decision(person, [], True)
        tries = code.tries + 1
        kept = None if tries >= max_tries else code.model_copy(update={"tries": tries})
        return Decision(person.model_copy(update={"account_code": kept}), [], False)
    return decide


def check_code(person: Person | None, name: str, digest: str, now: datetime) -> Person:
    """Raise unless the name is the registered one and the code is right and live."""
    code = _live_code(person, now) if person is not None else None
    if person is None or not _names_match(person, name) or code is None \
            or not hmac.compare_digest(code.code_digest, digest):
        raise CodeRefused()
    return person


def check_one_online_account(person: Person) -> None:
    """Raise if the person already has an online account."""
    if person.account is not None:
        raise AccountExists()


def open_account(*, name: str, account_number: str, password_hash: str, digest: str,
                 now: datetime) -> Callable[[Person | None], Decision[Person]]:
    """Step 2: the name is the registered one for the ID number and the code sent to the
    registered mobile is right and live; the code is used up."""
    def decide(state: Person | None) -> Decision[Person]:
        person = check_code(state, name, digest, now)
        check_one_online_account(person)
        account = OnlineAccount(account_number=account_number, password_hash=password_hash)
        new = person.model_copy(update={"account": account, "account_code": None})
        return Decision(new, [OnlineAccountOpened(person_id=person.person_id, account_number=account_number)], new)
    return decide


def check_id_card_matches(person: Person, presented_digest: str) -> None:
    """Raise unless the ID card presented (its digest) is the person's."""
    if not hmac.compare_digest(person.id_number_digest, presented_digest):
        raise IdCardMismatch()


def check_has_online_account(person: Person) -> OnlineAccount:
    """The person's online account; raise if they have none."""
    if person.account is None:
        raise NoOnlineAccount()
    return person.account


def close_account_at_counter(presented_digest: str) -> Callable[[Person | None], Decision[Person]]:
    """A clerk closes a person's online account on their ID card (one opened by someone
    else); the result is the account number it had."""
    def decide(person: Person | None) -> Decision[Person]:
        if person is None:
            raise NotFound("no such person")
        check_id_card_matches(person, presented_digest)
        number = check_has_online_account(person).account_number
        new = person.model_copy(update={"account": None, "account_code": None})
        return Decision(new, [OnlineAccountClosed(person_id=person.person_id, account_number=number)], number)
    return decide


def check_unlocked(credentials: Credentials, now: datetime) -> None:
    """Raise Locked while a lock set by too many failed logins lasts."""
    if credentials.locked_until is not None and credentials.locked_until > now:
        raise LoginLocked(credentials.locked_until)


def login_attempt(credentials: C, ok: bool, now: datetime, policy: LoginPolicy) -> tuple[C, LoginResult]:
    """Count a login attempt: success clears the count, the n-th failure in a row locks."""
    check_unlocked(credentials, now)
    if ok:
        return credentials.model_copy(update={"failures": 0, "locked_until": None}), LoginResult(True)
    failures = credentials.failures + 1
    if failures < policy.max_failures:
        return credentials.model_copy(update={"failures": failures}), LoginResult(False)
    until = now + timedelta(seconds=policy.lock_seconds)
    return credentials.model_copy(update={"failures": 0, "locked_until": until}), LoginResult(False, until)


def person_login(ok: bool, now: datetime, policy: LoginPolicy) -> Callable[[Person | None], Decision[Person]]:
    def decide(person: Person | None) -> Decision[Person]:
        if person is None or person.account is None:
            raise NotFound("no such online account")
        account, result = login_attempt(person.account, ok, now, policy)
        if account == person.account:
            return Decision(person, [], result)  # a success with nothing to clear: nothing to write
        new = person.model_copy(update={"account": account})
        events: list[EventData] = []
        if result.locked_until is not None:
            events.append(OnlineAccountLocked(person_id=person.person_id, account_number=account.account_number,
                                              failures=policy.max_failures, locked_until=result.locked_until))
        return Decision(new, events, result)
    return decide


def check_username_free(existing: StaffUser | None, username: str) -> None:
    """Raise if a staff user has the username (``existing``: who has it)."""
    if existing is not None:
        raise UsernameTaken(username)


def check_merchant_id_for_role(user: StaffUser) -> None:
    """Raise unless the user has a merchant id exactly when their role is merchant."""
    if (user.role == "merchant") != (user.merchant_id is not None):
        raise MerchantIdMismatch()


def create_staff(user: StaffUser) -> Callable[[StaffUser | None], Decision[StaffUser]]:
    def decide(state: StaffUser | None) -> Decision[StaffUser]:
        check_username_free(state, user.username)
        check_merchant_id_for_role(user)
        event = StaffUserCreated(user_id=user.user_id, username=user.username, role=user.role,
                                 merchant_id=user.merchant_id)
        return Decision(user, [event], user)
    return decide


def staff_login(ok: bool, now: datetime, policy: LoginPolicy) -> Callable[[StaffUser | None], Decision[StaffUser]]:
    def decide(user: StaffUser | None) -> Decision[StaffUser]:
        if user is None:
            raise NotFound("no such staff user")
        new, result = login_attempt(user, ok, now, policy)
        return Decision(new, [], result)
    return decide


def contribution_id(month: str, person_id: str) -> str:
    """One contribution per person per month, so its id is derived from both."""
    return f"C{month.replace('-', '')}{person_id}"


def check_each_person_once(person_ids: list[str]) -> None:
    """Raise if a contribution names a person more than once."""
    if len(set(person_ids)) != len(person_ids):
        raise RepeatedPerson()


def check_person_registered(person: Person | None, person_id: str) -> Person:
    """``person``; raise if no person ``person_id`` is registered."""
    if person is None:
        raise UnregisteredPerson(person_id)
    return person


def check_member_of_unit(person: Person, unit_id: str) -> None:
    """Raise unless the person belongs to the insured unit."""
    if person.unit_id != unit_id:
        raise NotInUnit(person.person_id, unit_id)


def check_month_unpaid(person: Person, month: str) -> None:
    """Raise if the person's contribution for the month is paid already."""
    if month in person.contributions:
        raise MonthAlreadyPaid(person.person_id, month)


def check_contribution(person: Person | None, person_id: str, unit_id: str, month: str) -> Person:
    """Raise unless ``person`` may have a contribution for ``month`` paid by ``unit_id``."""
    registered = check_person_registered(person, person_id)
    check_member_of_unit(registered, unit_id)
    check_month_unpaid(registered, month)
    return registered


def pay_contribution(*, person_id: str, unit_id: str, month: str, amount_fen: int,
                     checked: bool = False) -> Callable[[Person | None], Decision[Person]]:
    """Pay the person's share of ``month``. ``checked``: the caller checked the month unpaid
    before deciding to pay it; finding it paid now by this contribution (the command's own
    write, or one made at the same moment) is then that payment, not a second one."""
    def decide(state: Person | None) -> Decision[Person]:
        cid = contribution_id(month, person_id)
        event = ContributionPaid(contribution_id=cid, person_id=person_id, unit_id=unit_id, month=month,
                                 amount_fen=amount_fen)
        if checked and state is not None and state.contributions.get(month) == cid:
            return Decision(state, [], event)
        person = check_contribution(state, person_id, unit_id, month)
        new = person.model_copy(update={"contributions": {**person.contributions, month: cid}})
        return Decision(new, [event], event)
    return decide
