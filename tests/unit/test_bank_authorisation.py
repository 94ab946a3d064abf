"""POS authorisation rules: every response code, the PIN lock, the debit; the POS balance inquiry."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.bank.authorisation import REASONS, PosRequest, authorise, inquire
from services.bank.model import Account, CardState, Merchant
from shared.domain import Conflict
from shared.events import (
    BalanceInquired,
    CardPasswordLocked,
    FraudAlertRaised,
    PurchaseAuthorised,
    PurchaseDeclined,
)
from shared.events.bank import PosKind
from shared.domain import Decision

CARD = "6216610000000000017"
PHARMACY = Merchant(merchant_id="M-PH", name="Tongrentang", kind="pharmacy", designated=True)
SHOP = Merchant(merchant_id="M-SH", name="Corner shop", kind="shop", designated=False)


def account(balance: int = 10_000, status: str = "active", pin: str | None = "H1", failures: int = 0,
            locked: bool = False) -> Account:
    return Account(person_id="P1", account_id="PMA-P1", balance_fen=balance, current_card=CARD,
                   cards=[CardState(number=CARD, status=status)], pin_hash=pin, pin_failures=failures,  # type: ignore[arg-type]
                   pin_locked=locked)


def swipe(amount: int = 3_000, kind: PosKind = "purchase", card: str = CARD, merchant_id: str = "M-PH") -> PosRequest:
    return PosRequest(card_number=card, merchant_id=merchant_id, amount_fen=amount, kind=kind,
                      authorisation_id="AU1", at=datetime(2026, 1, 5, 9, tzinfo=UTC), business_date=date(2026, 1, 5))


def run(state: Account | None, request: PosRequest | None = None, merchant: Merchant | None = PHARMACY,
        pin_ok: bool = True, max_failures: int = 3) -> Decision[Account]:
    """One swipe; the PIN was checked against the account's current hash."""
    checked = state.pin_hash if state else None
    decide = authorise(request or swipe(), merchant, checked_hash=checked, pin_ok=pin_ok, max_failures=max_failures)
    return decide(state)


def test_a_purchase_at_a_designated_pharmacy_is_approved_and_debited_at_once() -> None:
    decision = run(account(balance=10_000))
    assert decision.result.response_code == "00" and decision.result.approved
    assert decision.state is not None and decision.state.balance_fen == 7_000
    [event] = decision.events
    assert isinstance(event, PurchaseAuthorised) and event.balance_after_fen == 7_000 and event.amount_fen == 3_000
    [entry] = decision.state.ledger
    assert (entry.kind, entry.amount_fen, entry.reference) == ("debit", 3_000, "AU1")


def test_the_whole_balance_can_be_spent_but_not_one_fen_more() -> None:
    assert run(account(balance=3_000)).result.response_code == "00"
    declined = run(account(balance=2_999))
    assert declined.result.response_code == "51"
    assert declined.state is not None and declined.state.balance_fen == 2_999 and declined.state.ledger == []


@pytest.mark.parametrize(("state", "request_", "merchant", "pin_ok", "code"), [
    (account(status="lost"), swipe(), PHARMACY, True, "41"),
    (account(status="cancelled"), swipe(), PHARMACY, True, "43"),
    (account(), swipe(merchant_id="M-NONE"), None, True, "03"),
    (account(), swipe(merchant_id="M-SH"), SHOP, True, "58"),
    (account(), swipe(kind="cash_withdrawal"), PHARMACY, True, "57"),
    (account(), swipe(kind="transfer"), PHARMACY, True, "57"),
    (account(pin=None), swipe(), PHARMACY, True, "62"),
    (account(locked=True, failures=3), swipe(), PHARMACY, True, "75"),
    (account(), swipe(), PHARMACY, False, "55"),
    (account(balance=100), swipe(amount=101), PHARMACY, True, "51"),
])
def test_each_refusal_answers_its_code_publishes_a_decline_and_moves_no_money(
    state: Account, request_: PosRequest, merchant: Merchant | None, pin_ok: bool, code: str,
) -> None:
    decision = run(state, request_, merchant, pin_ok)
    assert decision.result.response_code == code and not decision.result.approved
    assert decision.result.reason == REASONS[code]
    declined = decision.events[0]
    assert isinstance(declined, PurchaseDeclined) and declined.reason_code == code
    assert decision.state is not None and decision.state.balance_fen == state.balance_fen
    assert decision.state.ledger == []


def test_an_unknown_card_answers_14_and_records_nothing() -> None:
    assert run(None).result.response_code == "14"
    decision = run(account(), swipe(card="6216619999999999999"))
    assert decision.result.response_code == "14" and decision.state is None and decision.events == []


def test_an_attempt_on_a_lost_card_raises_a_fraud_alert_for_the_holder() -> None:
    decision = run(account(status="lost"))
    assert [type(e) for e in decision.events] == [PurchaseDeclined, FraudAlertRaised]
    alert = decision.events[1]
    assert isinstance(alert, FraudAlertRaised) and alert.person_id == "P1" and alert.merchant_id == "M-PH"


def test_a_lost_card_cancelled_by_its_replacement_is_still_refused_as_lost_with_a_fraud_alert() -> None:
    state = account()
    state.cards[0] = CardState(number=CARD, status="cancelled", reported_lost=True)
    decision = run(state)
    assert decision.result.response_code == "41"
    assert [type(e) for e in decision.events] == [PurchaseDeclined, FraudAlertRaised]


def test_a_card_that_is_not_the_accounts_current_one_is_refused_as_cancelled() -> None:
    state = account()
    state.cards.append(CardState(number="6216610000000000025"))
    state.current_card = "6216610000000000025"
    assert run(state).result.response_code == "43"


def test_the_checks_follow_the_table_order_a_lost_card_wins_over_everything() -> None:
    state = account(status="lost", pin=None, balance=0)
    cash_at_a_shop = swipe(kind="cash_withdrawal", merchant_id="M-SH")
    assert run(state, cash_at_a_shop, SHOP, pin_ok=False).result.response_code == "41"
    assert run(account(), swipe(kind="cash_withdrawal", merchant_id="M-SH"), SHOP).result.response_code == "58"


def test_wrong_pins_in_a_row_lock_the_card_on_the_last_allowed_try() -> None:
    state = account()
    codes = []
    for _ in range(3):
        decision = run(state, pin_ok=False, max_failures=3)
        assert decision.state is not None
        state = decision.state
        codes.append(decision.result.response_code)
    assert codes == ["55", "55", "75"]
    assert state.pin_locked and state.pin_failures == 3
    assert isinstance(decision.events[-1], CardPasswordLocked) and decision.events[-1].failures == 3
    # Locked: even the right PIN is refused until a teller resets it.
    assert run(state, pin_ok=True).result.response_code == "75"


def test_a_right_pin_clears_the_run_of_wrong_ones() -> None:
    first = run(account(), pin_ok=False, max_failures=3).state
    assert first is not None and first.pin_failures == 1
    second = run(first, swipe(amount=999_999), pin_ok=True).state  # declined 51, but the PIN was right
    assert second is not None and second.pin_failures == 0


def test_a_password_changed_during_the_swipe_is_a_conflict_not_a_wrong_pin() -> None:
    decide = authorise(swipe(), PHARMACY, checked_hash="OLD", pin_ok=False, max_failures=3)
    with pytest.raises(Conflict):
        decide(account(pin="NEW"))


# --- the balance inquiry at the POS ----------------------------------------------------

def ask(state: Account | None, merchant: Merchant | None = PHARMACY, pin_ok: bool = True, card: str = CARD,
        merchant_id: str = "M-PH") -> Decision[Account]:
    """One balance inquiry from the terminal; the PIN was checked against the account's current hash."""
    checked = state.pin_hash if state else None
    request = swipe(amount=0, kind="balance_inquiry", card=card, merchant_id=merchant_id)
    return inquire(request, merchant, checked_hash=checked, pin_ok=pin_ok, max_failures=3)(state)


def test_a_balance_inquiry_with_the_right_password_tells_the_balance_and_records_the_pos_channel() -> None:
    decision = ask(account(balance=8_450, failures=2))
    assert (decision.result.approved, decision.result.response_code) == (True, "00")
    assert decision.result.balance_after_fen == 8_450
    [event] = decision.events
    assert isinstance(event, BalanceInquired) and (event.channel, event.balance_fen) == ("pos", 8_450)
    assert decision.state is not None and decision.state.pin_failures == 0 and decision.state.ledger == []


@pytest.mark.parametrize(("state", "merchant", "merchant_id", "pin_ok", "code"), [
    (account(status="cancelled"), PHARMACY, "M-PH", True, "43"),
    (account(), None, "M-NONE", True, "03"),
    (account(), SHOP, "M-SH", True, "58"),
    (account(pin=None), PHARMACY, "M-PH", True, "62"),
    (account(locked=True, failures=3), PHARMACY, "M-PH", True, "75"),
])
def test_a_refused_balance_inquiry_tells_no_balance_and_changes_nothing(
    state: Account, merchant: Merchant | None, merchant_id: str, pin_ok: bool, code: str,
) -> None:
    decision = ask(state, merchant, pin_ok, merchant_id=merchant_id)
    assert (decision.result.approved, decision.result.response_code) == (False, code)
    assert decision.result.balance_after_fen is None
    assert decision.state is None and decision.events == []


def test_a_balance_inquiry_on_an_unknown_card_answers_14() -> None:
    assert ask(None).result.response_code == "14"
    assert ask(account(), card="6216619999999999999").result.response_code == "14"


def test_wrong_passwords_on_balance_inquiries_count_towards_the_same_lock_as_purchases() -> None:
    after_inquiry = ask(account(), pin_ok=False)
    assert after_inquiry.result.response_code == "55" and after_inquiry.result.balance_after_fen is None
    assert after_inquiry.state is not None and after_inquiry.state.pin_failures == 1 and after_inquiry.events == []
    after_purchase = run(after_inquiry.state, pin_ok=False).state
    assert after_purchase is not None and after_purchase.pin_failures == 2
    locked = ask(after_purchase, pin_ok=False)
    assert locked.result.response_code == "75" and locked.state is not None and locked.state.pin_locked
    assert [type(e) for e in locked.events] == [CardPasswordLocked]
    assert ask(locked.state, pin_ok=True).result.response_code == "75"


def test_a_balance_inquiry_on_a_lost_card_is_refused_with_a_fraud_alert() -> None:
    decision = ask(account(status="lost", balance=5_000), pin_ok=True)
    assert (decision.result.response_code, decision.result.balance_after_fen) == ("41", None)
    [alert] = decision.events
    assert isinstance(alert, FraudAlertRaised) and alert.kind == "balance_inquiry" and alert.amount_fen == 0
    assert (alert.person_id, alert.card_number, alert.merchant_id) == ("P1", CARD, "M-PH")


def test_a_purchase_alert_says_what_was_tried() -> None:
    alert = run(account(status="lost"), swipe(kind="cash_withdrawal")).events[1]
    assert isinstance(alert, FraudAlertRaised) and alert.kind == "cash_withdrawal"


def test_a_password_changed_during_an_inquiry_is_a_conflict() -> None:
    request = swipe(amount=0, kind="balance_inquiry")
    with pytest.raises(Conflict):
        inquire(request, PHARMACY, checked_hash="OLD", pin_ok=True, max_failures=3)(account(pin="NEW"))


def numbered(transaction_id: str = "T1", amount: int = 3_000, authorisation_id: str = "AU1",
             at: datetime = datetime(2026, 1, 5, 9, tzinfo=UTC), merchant_id: str = "M-PH",
             business_date: date = date(2026, 1, 5)) -> PosRequest:
    """A purchase carrying the terminal's transaction id."""
    return PosRequest(card_number=CARD, merchant_id=merchant_id, amount_fen=amount, kind="purchase",
                      authorisation_id=authorisation_id, at=at, business_date=business_date,
                      transaction_id=transaction_id)


def test_a_resent_authorisation_gets_the_first_answer_and_is_not_debited_again() -> None:
    first = run(account(balance=10_000), numbered())
    assert first.state is not None and first.result.response_code == "00"
    again = run(first.state, numbered(authorisation_id="AU2"))
    assert (again.state, again.events) == (None, [])  # nothing written, nothing published
    assert again.result == first.result and again.result.authorisation_id == "AU1"
    assert again.result.balance_after_fen == 7_000


def test_a_resent_wrong_pin_counts_once_towards_the_lock() -> None:
    first = run(account(), numbered(), pin_ok=False)
    assert first.state is not None and first.state.pin_failures == 1
    again = run(first.state, numbered(authorisation_id="AU2"), pin_ok=False)
    assert again.state is None and again.result.response_code == "55"


def test_a_transaction_id_reused_for_another_amount_is_refused_and_another_merchant_has_its_own() -> None:
    first = run(account(balance=10_000), numbered())
    assert first.state is not None
    with pytest.raises(Conflict, match="T1"):
        run(first.state, numbered(amount=3_001))
    other = run(first.state, numbered(merchant_id="M-PH2", authorisation_id="AU2"),
                merchant=Merchant(merchant_id="M-PH2", name="Second", kind="pharmacy", designated=True))
    assert other.result.response_code == "00" and other.result.balance_after_fen == 4_000


def test_answers_are_kept_for_a_day_only() -> None:
    first = run(account(balance=10_000), numbered("T1"))
    assert first.state is not None
    later = run(first.state, numbered("T2", at=datetime(2026, 1, 6, 9, 0, 1, tzinfo=UTC)))
    assert later.state is not None
    assert [r.key for r in later.state.pos_answers] == ["M-PH/T2"]


def test_answers_are_kept_a_business_day_only_even_when_business_days_are_short() -> None:
    """A simulation's business days last minutes: the window ends by the business date too,
    so an account does not keep every answer of a whole run."""
    first = run(account(balance=10_000), numbered("T1"))
    assert first.state is not None and first.state.pos_answers[0].business_date == date(2026, 1, 5)
    next_day = run(first.state, numbered("T2", authorisation_id="AU2", business_date=date(2026, 1, 6)))
    assert next_day.state is not None and [r.key for r in next_day.state.pos_answers] == ["M-PH/T1", "M-PH/T2"]
    resent = run(next_day.state, numbered("T1", authorisation_id="AU9", business_date=date(2026, 1, 6)))
    assert resent.state is None and resent.result.authorisation_id == "AU1"  # the day before is still in the window
    two_days_on = run(next_day.state, numbered("T3", authorisation_id="AU3", business_date=date(2026, 1, 7)))
    assert two_days_on.state is not None
    assert [r.key for r in two_days_on.state.pos_answers] == ["M-PH/T2", "M-PH/T3"]


def test_answers_kept_before_their_business_date_was_recorded_age_by_the_clock() -> None:
    first = run(account(balance=10_000), numbered("T1"))
    assert first.state is not None
    first.state.pos_answers = [r.model_copy(update={"business_date": None}) for r in first.state.pos_answers]
    later = run(first.state, numbered("T2", authorisation_id="AU2", business_date=date(2026, 1, 30)))
    assert later.state is not None and [r.key for r in later.state.pos_answers] == ["M-PH/T1", "M-PH/T2"]


@pytest.mark.parametrize("pin_ok", [True, False])
@pytest.mark.parametrize("rule", [authorise, inquire])
def test_a_decision_leaves_the_account_it_was_given_as_it_was(rule, pin_ok: bool) -> None:  # type: ignore[no-untyped-def]
    given = run(account(balance=10_000, failures=2), numbered("T1")).state  # with a ledger entry and an answer
    assert given is not None
    before = given.model_dump()
    request = numbered("T2", authorisation_id="AU2") if rule is authorise else swipe(0, "balance_inquiry")
    decision = rule(request, PHARMACY, checked_hash=given.pin_hash, pin_ok=pin_ok, max_failures=3)(given)
    assert decision.state is not None
    assert given.model_dump() == before
