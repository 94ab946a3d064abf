"""Tokens refused after a lock: the pure time comparison, the rounding to what the
database keeps, the sub-second ``iat`` tokens carry, and which events revoke."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt

from shared.auth import issue_token, verify_token
from shared.events import OnlineAccountClosed, OnlineAccountLocked, OnlineAccountOpened, new_event
from shared.revocations import ceil_to_millisecond, issued_before, revocation_of, staff_subject
from shared.settings import Settings

SETTINGS = Settings(environment="test", jwt_secret="x" * 40)
LOCK = datetime(2026, 3, 2, 9, 30, 15, 250_000, tzinfo=UTC)


def test_a_token_issued_at_or_before_the_lock_is_refused_and_one_after_it_is_not() -> None:
    at = LOCK.timestamp()
    assert issued_before(at - 3600, LOCK)
    assert issued_before(at - 0.000_001, LOCK)
    assert issued_before(at, LOCK)
    assert not issued_before(at + 0.001, LOCK)
    assert not issued_before(at + 900, LOCK)


def test_without_a_revocation_every_token_passes_and_without_iat_none_does() -> None:
    assert not issued_before(LOCK.timestamp(), None)
    assert issued_before(None, LOCK)


def test_the_database_s_naive_utc_time_compares_as_utc() -> None:
    naive = LOCK.replace(tzinfo=None)
    assert issued_before(LOCK.timestamp(), naive)
    assert not issued_before(LOCK.timestamp() + 0.001, naive)


def test_the_moment_is_rounded_up_to_the_millisecond_never_down() -> None:
    assert ceil_to_millisecond(LOCK) == LOCK
    assert ceil_to_millisecond(LOCK + timedelta(microseconds=1)) == LOCK + timedelta(milliseconds=1)
    assert ceil_to_millisecond(LOCK + timedelta(microseconds=999)) == LOCK + timedelta(milliseconds=1)
    # A token issued in the same millisecond, just before the lock, stays refused once stored.
    just_before = (LOCK + timedelta(microseconds=400)).timestamp()
    assert issued_before(just_before, ceil_to_millisecond(LOCK + timedelta(microseconds=500)))


def test_tokens_carry_a_sub_second_iat() -> None:
    before = datetime.now(UTC).timestamp()
    token = issue_token(SETTINGS, sub="P1", role="cardholder", person_id="P1")
    after = datetime.now(UTC).timestamp()
    assert isinstance(jwt.decode(token, options={"verify_signature": False})["iat"], float)  # not whole seconds
    principal = verify_token(SETTINGS, token)
    assert principal.issued_at is not None and before <= principal.issued_at <= after


def test_a_lock_and_a_closure_revoke_at_the_event_s_time_and_nothing_else_does() -> None:
    def event(data):  # type: ignore[no-untyped-def]
        return new_event(data, source="/medcard/identity", partitionkey="P1", sequence=1, correlationid="c")

    locked = event(OnlineAccountLocked(person_id="P1", account_number="acct1", failures=5,
                                       locked_until=LOCK + timedelta(minutes=15)))
    closed = event(OnlineAccountClosed(person_id="P1", account_number="acct1"))
    assert revocation_of(locked) == ("P1", locked.time)
    assert revocation_of(closed) == ("P1", closed.time)
    assert revocation_of(event(OnlineAccountOpened(person_id="P1", account_number="acct1"))) is None


def test_a_staff_key_never_equals_a_person_id() -> None:
    assert staff_subject("S123") == "staff:S123"
