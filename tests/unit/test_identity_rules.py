"""Each named rule of the register and the clock, refusing and admitting: it raises its own
error class, a kind of the shared one the HTTP answer is made from, with the same message."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.identity import clock, domain
from services.identity.domain import InsuredUnit, Person, StaffUser
from shared.domain import Conflict, Forbidden, Invalid, Locked

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
KEY = "k" * 40


def person(**changes: object) -> Person:
    base = Person(person_id="P1", name="Wang Fang", id_number_digest="d" * 64, id_number_masked="110***********002X",
                  mobile="13800138000", household_number="110105001234", unit_id="U1")
    return base.model_copy(update=changes)


def with_code(code: str = "402913") -> Person:
    digest = domain.code_digest(KEY, "P1", code)
    return person(account_code=domain.AccountCode(code_digest=digest, expires_at=NOW + timedelta(minutes=5)))


def test_one_person_per_id_number() -> None:
    domain.check_id_number_free(None)
    with pytest.raises(domain.IdNumberTaken, match="already registered") as err:
        domain.check_id_number_free(person())
    assert isinstance(err.value, Conflict) and err.value.code == "conflict"


def test_a_person_belongs_to_a_registered_unit() -> None:
    domain.check_unit_registered(InsuredUnit(unit_id="U1", name="Tongren"), "U1")
    with pytest.raises(domain.UnknownUnit, match="insured unit U9 is not registered") as err:
        domain.check_unit_registered(None, "U9")
    assert isinstance(err.value, Invalid)


def test_the_code_must_be_right_live_and_for_the_registered_name() -> None:
    right = domain.code_digest(KEY, "P1", "402913")
    assert domain.check_code(with_code(), "Wang Fang", right, NOW).person_id == "P1"
    refusals = [(with_code(), "Wang Fang", domain.code_digest(KEY, "P1", "000000"), NOW),
                (with_code(), "Li Lei", right, NOW),
                (with_code(), "Wang Fang", right, NOW + timedelta(minutes=6)),
                (person(), "Wang Fang", right, NOW),
                (None, "Wang Fang", right, NOW)]
    for subject, name, digest, now in refusals:
        with pytest.raises(domain.CodeRefused) as err:
            domain.check_code(subject, name, digest, now)
        assert isinstance(err.value, Invalid) and err.value.message == domain.CODE_REFUSED


def test_one_online_account_per_person() -> None:
    domain.check_one_online_account(person())
    with pytest.raises(domain.AccountExists) as err:
        domain.check_one_online_account(person(account=domain.OnlineAccount(account_number="a1", password_hash="h")))
    assert isinstance(err.value, Conflict) and err.value.message == domain.ACCOUNT_EXISTS


def test_the_counter_closes_on_the_holders_own_id_card() -> None:
    domain.check_id_card_matches(person(), "d" * 64)
    with pytest.raises(domain.IdCardMismatch, match="does not match the person") as err:
        domain.check_id_card_matches(person(), "e" * 64)
    assert isinstance(err.value, Forbidden)


def test_only_an_open_online_account_is_closed() -> None:
    account = domain.OnlineAccount(account_number="a1", password_hash="h")
    assert domain.check_has_online_account(person(account=account)) == account
    with pytest.raises(domain.NoOnlineAccount, match="no online account") as err:
        domain.check_has_online_account(person())
    assert isinstance(err.value, Conflict)


def test_no_login_while_a_lock_lasts() -> None:
    creds = domain.Credentials(password_hash="h", locked_until=NOW + timedelta(seconds=1))
    with pytest.raises(domain.LoginLocked, match="too many failed logins: locked until") as err:
        domain.check_unlocked(creds, NOW)
    assert isinstance(err.value, Locked) and err.value.code == "locked"
    domain.check_unlocked(creds, NOW + timedelta(seconds=1))
    domain.check_unlocked(domain.Credentials(password_hash="h"), NOW)


def test_one_staff_user_per_username() -> None:
    domain.check_username_free(None, "clerk-li")
    user = StaffUser(user_id="S1", username="clerk-li", role="clerk", password_hash="h")
    with pytest.raises(domain.UsernameTaken, match="username clerk-li is taken") as err:
        domain.check_username_free(user, "clerk-li")
    assert isinstance(err.value, Conflict)


def test_a_merchant_id_exactly_for_the_merchant_role() -> None:
    domain.check_merchant_id_for_role(StaffUser(user_id="S1", username="pos", role="merchant", merchant_id="M1",
                                                password_hash="h"))
    domain.check_merchant_id_for_role(StaffUser(user_id="S2", username="li", role="clerk", password_hash="h"))
    for role, merchant_id in (("merchant", None), ("teller", "M1")):
        with pytest.raises(domain.MerchantIdMismatch) as err:
            domain.check_merchant_id_for_role(StaffUser(user_id="S3", username="x", role=role,  # type: ignore[arg-type]
                                                        merchant_id=merchant_id, password_hash="h"))
        assert isinstance(err.value, Invalid)


def test_a_contribution_names_each_person_once() -> None:
    domain.check_each_person_once(["P1", "P2"])
    with pytest.raises(domain.RepeatedPerson, match="only once") as err:
        domain.check_each_person_once(["P1", "P2", "P1"])
    assert isinstance(err.value, Invalid)


def test_a_contribution_is_for_a_registered_person_of_the_paying_unit_once_a_month() -> None:
    assert domain.check_person_registered(person(), "P1").person_id == "P1"
    with pytest.raises(domain.UnregisteredPerson, match="person P9 is not registered"):
        domain.check_person_registered(None, "P9")
    domain.check_member_of_unit(person(), "U1")
    with pytest.raises(domain.NotInUnit, match="person P1 does not belong to insured unit U2") as err:
        domain.check_member_of_unit(person(), "U2")
    assert isinstance(err.value, Invalid)
    domain.check_month_unpaid(person(contributions={"2026-01": "C1"}), "2026-02")
    with pytest.raises(domain.MonthAlreadyPaid, match="2026-01 is already paid for person P1") as paid:
        domain.check_month_unpaid(person(contributions={"2026-01": "C1"}), "2026-01")
    assert isinstance(paid.value, Conflict)


def test_a_checked_contribution_found_paid_by_its_own_id_is_that_payment_not_a_second() -> None:
    """A batch's write that fell back to one by one finds its own effect: no second event;
    a month paid under another id, or an unchecked payment, is still refused."""
    pay = {"person_id": "P1", "unit_id": "U1", "month": "2026-01", "amount_fen": 500}
    first = domain.pay_contribution(**pay, checked=True)(person())  # type: ignore[arg-type]
    assert first.state is not None and len(first.events) == 1
    again = domain.pay_contribution(**pay, checked=True)(first.state)  # type: ignore[arg-type]
    assert again.state is first.state and again.events == []
    assert again.result.contribution_id == first.result.contribution_id
    with pytest.raises(domain.MonthAlreadyPaid):
        domain.pay_contribution(**pay)(first.state)  # type: ignore[arg-type]
    with pytest.raises(domain.MonthAlreadyPaid):
        domain.pay_contribution(**pay, checked=True)(person(contributions={"2026-01": "C-other"}))  # type: ignore[arg-type]


def test_the_clock_is_started_once() -> None:
    running = clock.ClockState(date=date(2026, 3, 2))
    clock.check_start_on_first_call(None, date(2026, 1, 1))
    clock.check_start_on_first_call(running, None)
    clock.check_start_on_first_call(running, date(2026, 3, 2))
    with pytest.raises(clock.ClockRunning, match="already running") as err:
        clock.check_start_on_first_call(running, date(2026, 1, 1))
    assert isinstance(err.value, Conflict)


def test_the_clock_stops_at_its_last_date() -> None:
    clock.check_before_last_date(clock.LAST_DATE - timedelta(days=2), 2, None)
    clock.check_before_last_date(date(2026, 1, 1), None, clock.LAST_DATE)
    for current, days, to in ((clock.LAST_DATE - timedelta(days=2), 3, None), (date(2026, 1, 1), None, date.max),
                              (date.max, None, None)):
        with pytest.raises(clock.PastLastDate, match="stops at") as err:
            clock.check_before_last_date(current, days, to)
        assert isinstance(err.value, Invalid)


def test_the_clock_only_moves_forward() -> None:
    clock.check_forward(date(2026, 3, 2), date(2026, 3, 2))
    with pytest.raises(clock.ClockBackwards, match="cannot move backwards") as err:
        clock.check_forward(date(2026, 3, 2), date(2026, 3, 1))
    assert isinstance(err.value, Conflict)


def test_an_advance_is_at_most_max_days() -> None:
    start = date(2026, 1, 1)
    clock.check_advance_length(start, start + timedelta(days=clock.MAX_DAYS))
    with pytest.raises(clock.AdvanceTooLong, match=f"at most {clock.MAX_DAYS} days") as err:
        clock.check_advance_length(start, start + timedelta(days=clock.MAX_DAYS + 1))
    assert isinstance(err.value, Invalid)
