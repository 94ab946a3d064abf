"""The bank's named rules, each shown refusing and admitting: the card password's rules, the
ID card at the counter, channels, stamps and merchants (``domain``), and the POS screening
and the terminal's own merchant (``authorisation``). Each refusal keeps the message and the
code the HTTP answer has always carried."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.bank import authorisation as pos
from services.bank import domain
from services.bank.model import Account, CardState, Merchant, Receipt, Stamp
from shared.domain import Conflict, Forbidden, Invalid, Locked

CARD = "6216610000000000017"
OLD = "6216610000000000025"
AT = datetime(2026, 1, 5, 9, tzinfo=UTC)
PHARMACY = Merchant(merchant_id="M-PH", name="Tongrentang", kind="pharmacy", designated=True)
SHOP = Merchant(merchant_id="M-SH", name="Corner shop", kind="shop", designated=False)


def account(**fields: object) -> Account:
    base: dict[str, object] = {"person_id": "P1", "account_id": "PMA-P1", "current_card": CARD,
                               "cards": [CardState(number=OLD, status="cancelled"), CardState(number=CARD)],
                               "pin_hash": "H1", "id_number_digest": "D1", "balance_fen": 500}
    return Account.model_validate({**base, **fields})


def test_a_password_is_managed_only_for_the_active_current_card() -> None:
    acc = account()
    domain.check_card_active(acc.card(CARD))
    domain.check_current_card(acc, CARD)
    with pytest.raises(domain.CardStopped, match="is cancelled; its password can no longer be managed"):
        domain.check_card_active(acc.card(OLD))
    with pytest.raises(domain.NotCurrentCard, match="no longer the account's current card"):
        domain.check_current_card(acc, OLD)
    assert issubclass(domain.CardStopped, Conflict) and issubclass(domain.NotCurrentCard, Conflict)


def test_a_first_password_is_set_once_and_changed_only_once_set() -> None:
    domain.check_password_not_set(account(pin_hash=None))
    with pytest.raises(domain.PasswordAlreadySet) as refused:
        domain.check_password_not_set(account())
    assert refused.value.code == "conflict"
    domain.check_password_set(account())
    with pytest.raises(domain.PasswordNotSet, match="not set yet: set it first"):
        domain.check_password_set(account(pin_hash=None))
    domain.check_password_resettable(account(), CARD)
    with pytest.raises(domain.PasswordNotSet, match=f"PUT /v1/cards/{CARD}/password"):
        domain.check_password_resettable(account(pin_hash=None), CARD)


def test_a_locked_or_changed_password_is_not_changed() -> None:
    domain.check_password_not_locked(account())
    with pytest.raises(domain.PasswordLocked) as refused:
        domain.check_password_not_locked(account(pin_locked=True))
    assert isinstance(refused.value, Locked) and refused.value.code == "locked"
    domain.check_password_unchanged(account(), "H1")
    with pytest.raises(domain.PasswordChangedMeanwhile, match="changed meanwhile"):
        domain.check_password_unchanged(account(), "H0")
    assert isinstance(domain.wrong_old_password(True), Locked)
    wrong = domain.wrong_old_password(False)
    assert isinstance(wrong, Forbidden) and wrong.message == "the old password is wrong"


def test_a_new_password_differs_from_the_old() -> None:
    domain.check_new_password_differs("111111", "222222")
    with pytest.raises(domain.SamePassword) as refused:
        domain.check_new_password_differs("111111", "111111")
    assert isinstance(refused.value, Invalid)


def test_the_id_card_is_shown_by_a_teller_only_and_must_be_the_holders() -> None:
    domain.check_id_number_for_first_password(by_teller=True, id_number_given=True)
    domain.check_id_number_for_first_password(by_teller=False, id_number_given=False)
    with pytest.raises(domain.IdNumberRequired, match="on the holder's ID card"):
        domain.check_id_number_for_first_password(by_teller=True, id_number_given=False)
    with pytest.raises(domain.IdNumberNotExpected, match="only a teller"):
        domain.check_id_number_for_first_password(by_teller=False, id_number_given=True)
    domain.check_id_card_shown(by_teller=False, id_number_given=False)
    with pytest.raises(domain.IdNumberRequired, match="id_number is required"):
        domain.check_id_card_shown(by_teller=True, id_number_given=False)
    domain.check_id_card(account(), "D1")
    with pytest.raises(domain.IdCardMismatch) as mismatch:
        domain.check_id_card(account(), "D2")
    assert mismatch.value.code == "forbidden"
    with pytest.raises(domain.IdNotReceived):
        domain.check_id_card(account(id_number_digest=None), "D1")


def test_a_balance_is_told_only_through_a_channel_open_to_the_role() -> None:
    assert domain.check_channel_open("cardholder", None) == "online"
    assert domain.check_channel_open("teller", "counter") == "counter"
    with pytest.raises(domain.ChannelNotOpen, match="channel counter is not open to role cardholder"):
        domain.check_channel_open("cardholder", "counter")


def test_a_receipt_is_stamped_once() -> None:
    receipt = Receipt(receipt_number="R1", card_number=CARD, requested_on=date(2026, 1, 2))
    domain.check_not_stamped(receipt)
    receipt.stamp = Stamp(branch="B", seal="S", processed_at=AT, business_date=date(2026, 1, 5), loss_reported=True)
    with pytest.raises(domain.AlreadyStamped, match="receipt R1 was already stamped at 2026-01-05T09:00:00"):
        domain.check_not_stamped(receipt)


def test_a_merchant_is_registered_once_and_only_a_hospital_or_pharmacy_is_designated() -> None:
    domain.check_new_merchant(None, "M-PH")
    with pytest.raises(domain.MerchantExists, match="merchant M-PH is already registered"):
        domain.check_new_merchant(PHARMACY, "M-PH")
    domain.check_designation("pharmacy", True)
    domain.check_designation("shop", False)
    with pytest.raises(domain.ShopNotDesignated) as refused:
        domain.check_designation("shop", True)
    assert refused.value.code == "invalid"


def test_a_terminal_speaks_for_its_own_merchant() -> None:
    pos.check_own_terminal("merchant", "M-PH", "M-PH")
    pos.check_own_terminal("operator", "ops1", "M-PH")
    with pytest.raises(pos.NotThisTerminal, match="this terminal belongs to merchant M-SH, not M-PH"):
        pos.check_own_terminal("merchant", "M-SH", "M-PH")


def test_each_pos_screening_rule_refuses_with_its_code_and_admits_otherwise() -> None:
    acc = account()
    card, old = acc.card(CARD), acc.card(OLD)
    assert pos.check_card_known(acc, CARD) is None
    assert pos.check_card_known(acc, "6216619999999999999") == "14" and pos.check_card_known(None, CARD) == "14"
    assert pos.check_card_not_lost(card) is None
    assert pos.check_card_not_lost(CardState(number=CARD, status="lost")) == "41"
    assert pos.check_card_not_cancelled(acc, card) is None and pos.check_card_not_cancelled(acc, old) == "43"
    assert pos.check_merchant_registered(PHARMACY) is None and pos.check_merchant_registered(None) == "03"
    assert pos.check_designated_merchant(PHARMACY) is None and pos.check_designated_merchant(SHOP) == "58"
    assert pos.check_medical_use("purchase") is None and pos.check_medical_use("balance_inquiry") is None
    assert pos.check_medical_use("cash_withdrawal") == "57"
    assert pos.check_pin_set(acc) is None and pos.check_pin_set(account(pin_hash=None)) == "62"
    assert pos.check_pin_tries_left(acc) is None and pos.check_pin_tries_left(account(pin_locked=True)) == "75"
    assert pos.check_balance_sufficient(acc, 500) is None and pos.check_balance_sufficient(acc, 501) == "51"
