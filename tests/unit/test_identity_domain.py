"""The register's rules: accounts need a matching name, logins lock after failures in a
row, staff users, and one contribution per person per month."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.identity import domain
from services.identity.domain import LoginPolicy, Person, StaffUser
from shared.domain import Conflict, Forbidden, Invalid, Locked
from shared.events import (
    ContributionPaid,
    EventData,
    OnlineAccountClosed,
    OnlineAccountCodeIssued,
    OnlineAccountLocked,
    OnlineAccountOpened,
    PersonRegistered,
)

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
POLICY = LoginPolicy(max_failures=3, lock_seconds=900)


def person(**changes: object) -> Person:
    base = Person(person_id="P1", name="Wang Fang", id_number_digest="d" * 64, id_number_masked="110***********002X",
                  mobile="13800138000", household_number="110105001234", unit_id="U1")
    return base.model_copy(update=changes)


KEY = "k" * 40
CODE = "402913"
DIGEST = domain.code_digest(KEY, "P1", CODE)


def with_code(p: Person | None = None, code: str = CODE, now: datetime = NOW) -> Person:
    decision = domain.issue_account_code(name="Wang Fang", digest=domain.code_digest(KEY, "P1", code),
                                         sealed="v1.sealed", now=now, ttl_seconds=300)(p or person())
    assert decision.state is not None and decision.result is True
    return decision.state


def open_with(p: Person, *, name: str = "Wang Fang", number: str = "wangfang01", digest: str = DIGEST,
              now: datetime = NOW) -> Person:
    decision = domain.open_account(name=name, account_number=number, password_hash="h", digest=digest, now=now)(p)
    assert decision.state is not None
    return decision.state


def with_account() -> Person:
    return open_with(with_code())


def test_registering_publishes_the_person_with_a_masked_id_number_only() -> None:
    decision = domain.register_person(person())(None)
    [event] = decision.events
    assert isinstance(event, PersonRegistered)
    assert event.id_number_masked == "110***********002X" and event.id_number_digest == "d" * 64
    assert "id_number" not in event.model_dump()


def test_the_same_person_is_not_registered_twice() -> None:
    with pytest.raises(Conflict):
        domain.register_person(person())(person())


def test_an_account_is_opened_with_the_registered_name_and_the_code_sent_to_the_mobile() -> None:
    decision = domain.open_account(name=" Wang Fang ", account_number="wangfang01", password_hash="h",
                                   digest=DIGEST, now=NOW)(with_code())
    assert decision.events == [OnlineAccountOpened(person_id="P1", account_number="wangfang01")]
    assert decision.state is not None and decision.state.account_code is None  # used up


def test_a_code_is_issued_sealed_and_kept_only_as_a_digest() -> None:
    decision = domain.issue_account_code(name="Wang Fang", digest=DIGEST, sealed="v1.sealed", now=NOW,
                                         ttl_seconds=300)(person())
    [event] = decision.events
    assert isinstance(event, OnlineAccountCodeIssued)
    assert event.code_sealed == "v1.sealed" and event.expires_at == NOW + timedelta(seconds=300)
    assert CODE not in str(event.model_dump()) and CODE not in decision.state.model_dump_json()  # type: ignore[union-attr]
    assert len(domain.new_code()) == 6 and domain.new_code().isdigit()


def test_a_name_that_does_not_match_gets_no_code_and_no_event() -> None:
    decision = domain.issue_account_code(name="Wang Fan", digest=DIGEST, sealed="s", now=NOW, ttl_seconds=300)(person())
    assert decision.events == [] and decision.result is False and decision.state == person()


@pytest.mark.parametrize("case", ["no code", "wrong name", "wrong code", "expired"])
def test_every_refused_opening_is_the_same_answer(case: str) -> None:
    p, name, digest, now = with_code(), "Wang Fang", DIGEST, NOW
    if case == "no code":
        p = person()
    elif case == "wrong name":
        name = "Wang Fan"
    elif case == "wrong code":
        digest = domain.code_digest(KEY, "P1", "000000")
    else:
        now = NOW + timedelta(seconds=300)
    with pytest.raises(Invalid) as refused:
        domain.open_account(name=name, account_number="x1234", password_hash="h", digest=digest, now=now)(p)
    assert refused.value.message == domain.CODE_REFUSED


def test_wrong_codes_count_and_the_last_try_voids_the_code() -> None:
    p, wrong = with_code(), domain.code_digest(KEY, "P1", "111111")
    for tries in (1, 2):
        decision = domain.check_account_code(name="Wang Fang", digest=wrong, now=NOW, max_tries=3)(p)
        assert decision.result is False and decision.state is not None
        p = decision.state
        assert p.account_code is not None and p.account_code.tries == tries
    decision = domain.check_account_code(name="Wang Fang", digest=wrong, now=NOW, max_tries=3)(p)
    assert decision.state is not None and decision.state.account_code is None
    right = domain.check_account_code(name="Wang Fang", digest=DIGEST, now=NOW, max_tries=3)(decision.state)
    assert right.result is False  # even the right code: a new one must be asked for


def test_a_person_has_one_online_account_and_the_refusal_does_not_name_it() -> None:
    with pytest.raises(Conflict) as refused:
        open_with(with_code(with_account()), number="other1")
    assert "wangfang01" not in refused.value.message and "counter" in refused.value.message


def test_the_counter_closes_an_account_on_the_id_card_only() -> None:
    with pytest.raises(Forbidden):
        domain.close_account_at_counter("e" * 64)(with_account())
    decision = domain.close_account_at_counter("d" * 64)(with_account())
    assert decision.result == "wangfang01" and decision.state is not None and decision.state.account is None
    assert decision.events == [OnlineAccountClosed(person_id="P1", account_number="wangfang01")]
    with pytest.raises(Conflict, match="no online account"):
        domain.close_account_at_counter("d" * 64)(decision.state)


def login(p: Person, ok: bool, now: datetime = NOW) -> tuple[Person, list[EventData], domain.LoginResult]:
    decision = domain.person_login(ok, now, POLICY)(p)
    assert decision.state is not None
    return decision.state, decision.events, decision.result


def test_the_third_failed_login_in_a_row_locks_the_account_and_says_so() -> None:
    p = with_account()
    p, events, result = login(p, False)
    p, events, result = login(p, False)
    assert events == [] and result.locked_until is None
    p, events, result = login(p, False)
    until = NOW + timedelta(seconds=900)
    assert result == domain.LoginResult(False, until)
    assert events == [OnlineAccountLocked(person_id="P1", account_number="wangfang01", failures=3,
                                          locked_until=until)]
    with pytest.raises(Locked, match="locked until"):
        login(p, True, NOW + timedelta(seconds=899))
    p, events, result = login(p, True, until)
    assert result.ok and p.account is not None and p.account.locked_until is None


def test_a_successful_login_clears_the_count_of_failures() -> None:
    p, _, _ = login(with_account(), False)
    p, _, _ = login(p, False)
    p, _, _ = login(p, True)
    p, events, result = login(p, False)
    assert p.account is not None and p.account.failures == 1 and events == [] and not result.ok


def test_staff_logins_lock_the_same_way_without_an_event() -> None:
    user = StaffUser(user_id="S1", username="clerk-li", role="clerk", password_hash="h")
    for _ in range(3):
        decision = domain.staff_login(False, NOW, POLICY)(user)
        assert decision.state is not None and decision.events == []
        user = decision.state
    assert user.locked_until == NOW + timedelta(seconds=900)


def test_a_merchant_terminal_needs_a_merchant_id_and_no_one_else_has_one() -> None:
    with pytest.raises(Invalid):
        domain.create_staff(StaffUser(user_id="S1", username="pos-1", role="merchant", password_hash="h"))(None)
    with pytest.raises(Invalid):
        domain.create_staff(StaffUser(user_id="S1", username="clerk-1", role="clerk", merchant_id="M1",
                                      password_hash="h"))(None)


def pay(p: Person | None, unit: str = "U1") -> Person:
    decision = domain.pay_contribution(person_id="P1", unit_id=unit, month="2026-01", amount_fen=12850)(p)
    assert decision.state is not None
    assert decision.events == [ContributionPaid(contribution_id="C202601P1", person_id="P1", unit_id=unit,
                                                month="2026-01", amount_fen=12850)]
    return decision.state


def test_one_contribution_per_person_per_month() -> None:
    paid = pay(person())
    with pytest.raises(Conflict, match="already paid"):
        pay(paid)


def test_a_contribution_is_paid_only_by_the_persons_own_unit() -> None:
    with pytest.raises(Invalid, match="does not belong to insured unit U2"):
        pay(person(), unit="U2")


def test_a_contribution_for_an_unregistered_person_is_refused() -> None:
    with pytest.raises(Invalid, match="not registered"):
        pay(None)
