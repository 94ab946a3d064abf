"""Every coded value the other services really send is worded in both languages (pure).

The events here carry the cards service's and the bank's own constants and the event
contract's own literals, so a value added or renamed there without wording here fails.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable
from datetime import UTC, date, datetime

import pytest

from services.bank.authorisation import APPROVED, REASONS
from services.cards.domain import APPLICATION_DOCUMENTS, BROKEN_CARD, PICKUP_DOCUMENTS, PICKUP_LOCATION
from services.notifications.compose import LOST_CARD, draft_for
from services.notifications.templates import Language, render
from shared.events import (
    BankStamped,
    CardLost,
    CardPasswordChanged,
    EventData,
    PurchaseDeclined,
    ReplacementReady,
)
from shared.events.bank import PasswordChannel
from shared.events.cards import LossChannel

CARD = "6216610000000012345"
DAY = date(2026, 1, 5)
VOUCHER, RECEIPT = "V583920174625", "R202601050001"
IDENTIFIERS = {VOUCHER, RECEIPT}
"""The only ASCII letters a Chinese message may hold: the references a person quotes back."""
LETTERS = re.compile(r"[A-Za-z]+")
CHINESE = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def foreign_words(text: str, allowed: Iterable[str] = IDENTIFIERS) -> list[str]:
    """The runs of ASCII letters left once each allowed identifier is cut out of the text."""
    for token in allowed:
        text = text.replace(token, " ")
    return LETTERS.findall(text)


def both(event: EventData) -> dict[Language, str]:
    """The event's message in Chinese and English; names, merchant and branch are Chinese free text."""
    draft = draft_for(event, "仁和大药房")
    assert draft is not None
    return {language: render(draft.template, language, "张三", draft.params) for language in ("zh", "en")}


def declined(code: str) -> PurchaseDeclined:
    return PurchaseDeclined(person_id="P1", card_number=CARD, authorisation_id="AU1", merchant_id="M1",
                            amount_fen=999, kind="purchase", reason_code=code, reason=REASONS[code],
                            business_date=DAY)


READY = ReplacementReady(person_id="P1", card_number=CARD, receipt_number=RECEIPT, ready_on=date(2026, 1, 26),
                         pickup_location=PICKUP_LOCATION, documents_required=PICKUP_DOCUMENTS)
REAL_EVENTS: list[EventData] = [
    *[CardLost(person_id="P1", card_number=CARD, channel=c, voucher=VOUCHER, business_date=DAY)
      for c in typing.get_args(LossChannel)],
    *[CardPasswordChanged(person_id="P1", card_number=CARD, channel=c) for c in typing.get_args(PasswordChannel)],
    READY,
    # What cards asks for at the counter is not in a message today; worded all the same.
    ReplacementReady(person_id="P1", card_number=CARD, receipt_number=RECEIPT, ready_on=date(2026, 1, 26),
                     pickup_location=PICKUP_LOCATION, documents_required=[*APPLICATION_DOCUMENTS, BROKEN_CARD]),
    BankStamped(person_id="P1", card_number=CARD, receipt_number=RECEIPT, branch="中国银行西单储蓄所",
                seal="BOC-0042", processed_at=datetime(2026, 1, 5, 6, 30, tzinfo=UTC), business_date=DAY,
                loss_reported=False),
    *[declined(code) for code in REASONS if code not in (APPROVED, LOST_CARD)],
]


def label(event: EventData) -> str:
    value = getattr(event, "channel", None) or getattr(event, "reason_code", None) or ""
    return f"{type(event).__name__}-{value}".rstrip("-")


def test_the_check_finds_the_english_words_of_the_old_card_ready_message() -> None:
    old = "【医保】张三您好，请自2026-01-26起携带replacement receipt、resident ID card到card management centre领取。"
    assert foreign_words(old) == ["replacement", "receipt", "resident", "ID", "card", "card", "management", "centre"]
    assert foreign_words(f"挂失凭证号{VOUCHER}，回执{RECEIPT}，尾号2345") == []
    assert foreign_words("挂失凭证号V583920174626") == ["V"]


@pytest.mark.parametrize("event", REAL_EVENTS, ids=label)
def test_chinese_messages_hold_no_english_and_english_ones_no_chinese(event: EventData) -> None:
    text = both(event)
    assert foreign_words(text["zh"]) == [], text["zh"]
    assert not CHINESE.search(text["en"].replace("张三", "").replace("仁和大药房", "").replace(
        "中国银行西单储蓄所", "")), text["en"]


@pytest.mark.parametrize("channel", typing.get_args(LossChannel))
def test_a_loss_report_says_how_it_was_made(channel: str) -> None:
    text = both(CardLost(person_id="P1", card_number=CARD, channel=channel, voucher=VOUCHER,  # type: ignore[arg-type]
                         business_date=DAY))
    assert {"online": "已于2026-01-05通过网上挂失", "bank": "已于2026-01-05在银行网点挂失"}[channel] in text["zh"]
    assert {"online": "reported lost online on", "bank": "reported lost at the bank on"}[channel] in text["en"]


def test_the_card_ready_message_names_the_documents_and_the_place_of_the_cards_service() -> None:
    text = both(READY)
    assert "请自2026-01-26起携带补卡回执、居民身份证到医疗保险经办机构卡管理中心领取。" in text["zh"]
    assert text["en"].endswith("Collect it from 2026-01-26 at the card management centre of the medical insurance "
                               "agency; bring the replacement receipt and your resident ID card.")


def test_code_62_reads_as_password_not_set_in_both_languages() -> None:
    assert "password has not been set" in REASONS["62"]
    text = both(declined("62"))
    assert text["zh"].endswith("交易未成功：该卡尚未设置密码。")
    assert text["en"].endswith("was refused: the card password has not been set.")
    assert "停用" not in text["zh"] and "no longer valid" not in text["en"]


@pytest.mark.parametrize(("code", "zh", "en"), [
    ("03", "该商户未在银行登记", "the merchant is not registered with the bank"),
    ("43", "该卡已注销", "the card has been cancelled"),
])
def test_codes_that_fell_back_to_the_banks_english_words_are_worded(code: str, zh: str, en: str) -> None:
    text = both(declined(code))
    assert text["zh"].endswith(f"交易未成功：{zh}。") and text["en"].endswith(f"was refused: {en}.")


def test_every_refusal_code_of_the_bank_has_its_own_chinese_wording() -> None:
    refusals = [code for code in REASONS if code not in (APPROVED, LOST_CARD)]
    reasons = [both(declined(code))["zh"].rsplit("：", 1)[1] for code in refusals]
    assert len(set(reasons)) == len(refusals)
    assert not any(r.startswith("银行返回代码") for r in reasons)
