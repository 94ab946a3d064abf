"""Which events a cardholder hears about, and what the message says (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.bank.authorisation import PosRequest, authorise
from services.bank.model import Account, CardState, Merchant
from services.cards.domain import PICKUP_DOCUMENTS, PICKUP_LOCATION
from services.notifications.compose import draft_for, yuan
from services.notifications.templates import TEMPLATES, render
from shared.events import (
    BalanceInquired,
    BankStamped,
    CardIssued,
    CardLost,
    CardPasswordChanged,
    CardPasswordLocked,
    CardPasswordReset,
    EventData,
    FraudAlertRaised,
    MonthlyTransfer,
    OnlineAccountCodeIssued,
    PersonRegistered,
    PurchaseAuthorised,
    PurchaseDeclined,
    ReplacementReady,
    ReplacementRequested,
)

CARD = "6216610000000012345"
OLD = "6216610000000099871"
P = "P1"
DAY = date(2026, 1, 5)
AT = datetime(2026, 1, 5, 6, 30, tzinfo=UTC)  # 14:30 in China

CARDHOLDER_EVENTS: list[EventData] = [
    CardLost(person_id=P, card_number=CARD, channel="online", voucher="GS202601050001", business_date=DAY),
    ReplacementRequested(person_id=P, card_number=CARD, receipt_number="R123", documents=["id_card"],
                         business_date=DAY),
    BankStamped(person_id=P, card_number=CARD, receipt_number="R123", branch="BOC Xidan savings office",
                seal="BOC-0042", processed_at=AT, business_date=DAY, loss_reported=False),
    ReplacementReady(person_id=P, card_number=CARD, receipt_number="R123", ready_on=date(2026, 1, 26),
                     pickup_location=PICKUP_LOCATION, documents_required=PICKUP_DOCUMENTS),
    CardIssued(person_id=P, card_number=CARD, agent_bank="BOC", replaces=OLD),
    MonthlyTransfer(person_id=P, account_id="A1", card_number=CARD, month="2026-01", contribution_id="C1",
                    amount_fen=12345, balance_after_fen=1234567),
    PurchaseAuthorised(person_id=P, card_number=CARD, authorisation_id="AU1", merchant_id="M1", amount_fen=2050,
                       balance_after_fen=10295, business_date=DAY),
    PurchaseDeclined(person_id=P, card_number=CARD, authorisation_id="AU2", merchant_id="M1", amount_fen=999,
                     kind="purchase", reason_code="51", reason="insufficient funds", business_date=DAY),
    FraudAlertRaised(person_id=P, card_number=CARD, authorisation_id="AU3", merchant_id="M1", amount_fen=30000,
                     attempted_at=AT),
    CardPasswordChanged(person_id=P, card_number=CARD, channel="phone"),
    CardPasswordLocked(person_id=P, card_number=CARD, failures=3),
    CardPasswordReset(person_id=P, card_number=CARD),
    FraudAlertRaised(person_id=P, card_number=CARD, authorisation_id="AU4", merchant_id="M1", amount_fen=0,
                     attempted_at=AT, kind="balance_inquiry"),
]
CODE_EVENT = OnlineAccountCodeIssued(person_id=P, code_sealed="v1.sealed-for-the-sms-channel", expires_at=AT)
"""Its code is opened by the SMS dispatcher only (tests/integration/test_online_accounts.py)."""


def text(event: EventData, language: str = "zh", merchant: str | None = None) -> str:
    draft = draft_for(event, merchant)
    assert draft is not None
    return render(draft.template, language, "张三" if language == "zh" else "Zhang San", draft.params)  # type: ignore[arg-type]


@pytest.mark.parametrize("event", CARDHOLDER_EVENTS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_cardholder_event_renders_in_both_languages_with_the_card_masked(event: EventData, language: str) -> None:
    draft = draft_for(event)
    assert draft is not None
    message = text(event, language)
    assert message.startswith("【医保】" if language == "zh" else "[MedCard]")
    assert CARD not in message and OLD not in message
    assert ("2345" in message) == ("{card}" in TEMPLATES[draft.template][language])  # type: ignore[index]


def test_every_template_is_used_by_some_event() -> None:
    used = {draft_for(e).template for e in [*CARDHOLDER_EVENTS, CODE_EVENT]}  # type: ignore[union-attr]
    assert used == set(TEMPLATES)


def test_a_loss_report_message_carries_the_voucher_and_the_channel_in_the_persons_language() -> None:
    assert text(CARDHOLDER_EVENTS[0]) == (
        "【医保】张三您好，您尾号2345的医保卡已于2026-01-05通过网上挂失，挂失凭证号GS202601050001，请妥善保存以备查询。")
    assert "reported lost online on 2026-01-05. Loss voucher: GS202601050001." in text(CARDHOLDER_EVENTS[0], "en")


def test_the_ready_message_says_where_and_with_which_documents() -> None:
    zh, en = text(CARDHOLDER_EVENTS[3]), text(CARDHOLDER_EVENTS[3], "en")
    assert "请自2026-01-26起携带补卡回执、居民身份证到医疗保险经办机构卡管理中心领取。" in zh
    assert ("from 2026-01-26 at the card management centre of the medical insurance agency; "
            "bring the replacement receipt and your resident ID card.") in en


def test_a_place_or_document_without_wording_is_shown_as_cards_sent_it() -> None:
    odd = CARDHOLDER_EVENTS[3].model_copy(update={"pickup_location": "3 Fuxing Road",
                                                  "documents_required": ["resident ID card", "photo"]})
    assert "携带居民身份证、photo到3 Fuxing Road领取" in text(odd)


def test_the_monthly_transfer_gives_amount_and_balance_in_yuan() -> None:
    assert "2026-01医保个人账户划入123.45元，当前余额12,345.67元" in text(CARDHOLDER_EVENTS[5])
    assert "CNY 123.45 was credited to your personal account for 2026-01; balance CNY 12,345.67" in text(
        CARDHOLDER_EVENTS[5], "en")


def test_a_purchase_names_the_merchant_when_known_and_its_id_otherwise() -> None:
    assert "在仁和大药房消费20.50元，余额102.95元" in text(CARDHOLDER_EVENTS[6], merchant="仁和大药房")
    assert "CNY 20.50 paid at M1 on 2026-01-05" in text(CARDHOLDER_EVENTS[6], "en")


def test_a_refusal_is_explained_by_its_reason_code_or_else_by_the_code_in_chinese_and_the_banks_words() -> None:
    assert text(CARDHOLDER_EVENTS[7]).endswith("交易未成功：余额不足。")
    odd = CARDHOLDER_EVENTS[7].model_copy(update={"reason_code": "96", "reason": "system malfunction"})
    assert text(odd).endswith("交易未成功：银行返回代码96。")
    assert text(odd, "en").endswith("was refused: system malfunction.")


def test_a_swipe_of_a_lost_card_yields_one_message_the_urgent_alert_not_also_a_refusal() -> None:
    # The bank's own decision for a swipe of a lost card: a decline (41) and a fraud alert.
    lost = Account(person_id=P, account_id="PMA-P1", balance_fen=10_000, current_card=CARD,
                   cards=[CardState(number=CARD, status="lost")], pin_hash="H1")
    swipe = PosRequest(card_number=CARD, merchant_id="M1", amount_fen=30_000, kind="purchase",
                       authorisation_id="AU3", at=AT, business_date=DAY)
    pharmacy = Merchant(merchant_id="M1", name="仁和大药房", kind="pharmacy", designated=True)
    events = authorise(swipe, pharmacy, checked_hash="H1", pin_ok=True, max_failures=3)(lost).events
    assert [(type(e).__name__, getattr(e, "reason_code", None)) for e in events] == [
        ("PurchaseDeclined", "41"), ("FraudAlertRaised", None)]
    drafts = [d for d in (draft_for(e) for e in events) if d is not None]
    assert [(d.template, d.urgent) for d in drafts] == [("fraud_alert", True)]
    # Any other refusal still gets its message.
    other = events[0].model_copy(update={"reason_code": "43", "reason": "card cancelled, pick up"})
    assert draft_for(other) is not None


def test_an_attempt_on_a_lost_card_is_urgent_and_says_when_in_china_time() -> None:
    draft = draft_for(CARDHOLDER_EVENTS[8])
    assert draft is not None and draft.urgent
    assert text(CARDHOLDER_EVENTS[8], "en").startswith("[MedCard] URGENT:")
    assert "2026-01-05 14:30" in text(CARDHOLDER_EVENTS[8])
    attempts = (CARDHOLDER_EVENTS[8], CARDHOLDER_EVENTS[-1])
    assert not any(draft_for(e).urgent for e in CARDHOLDER_EVENTS if e not in attempts)  # type: ignore[union-attr]


def test_a_new_card_handed_out_names_the_old_one_but_a_first_card_yields_no_message() -> None:
    assert "原卡（尾号9871）已停用" in text(CARDHOLDER_EVENTS[4])
    assert draft_for(CardIssued(person_id=P, card_number=CARD, agent_bank="BOC")) is None


def test_events_that_are_not_for_the_cardholder_yield_no_message() -> None:
    quiet = [
        PersonRegistered(person_id=P, name="张三", id_number_masked="110***********123X", id_number_digest="d",
                         mobile="13800138000", unit_id=None),
        BalanceInquired(person_id=P, card_number=CARD, channel="phone", balance_fen=100),
    ]
    assert [draft_for(e) for e in quiet] == [None, None]


def test_yuan_are_formatted_from_integer_fen_without_rounding() -> None:
    assert [yuan(0), yuan(5), yuan(100), yuan(123456789)] == ["0.00", "0.05", "1.00", "1,234,567.89"]


def test_a_balance_inquiry_on_a_lost_card_warns_of_a_read_balance_not_of_a_payment() -> None:
    inquiry = CARDHOLDER_EVENTS[-1]
    draft = draft_for(inquiry)
    assert draft is not None and draft.urgent and draft.template == "fraud_alert_balance"
    assert "试图用您已挂失的尾号2345医保卡查询余额，查询已被拒绝" in text(inquiry)
    en = text(inquiry, "en", merchant="Renhe Pharmacy")
    assert "tried to read the balance of your card ending 2345, which is reported lost, at Renhe Pharmacy" in en
    assert "CNY" not in en


def test_a_one_time_code_message_is_urgent_and_carries_the_code_only_sealed() -> None:
    draft = draft_for(CODE_EVENT)
    assert draft is not None and draft.template == "account_code" and draft.urgent
    assert draft.params == {"code_sealed": "v1.sealed-for-the-sms-channel", "until": "2026-01-05 14:30"}
    shown = render("account_code", "en", "Zhang San", {**draft.params, "code": "402913"})
    assert "your code to open your online account is 402913, valid until 2026-01-05 14:30" in shown
