"""Message templates in Chinese and English, and the wording of coded values.

A template's parameters are language-neutral (card last digits, amounts in yuan,
dates, codes); ``render`` words the coded ones in the person's language.
"""

from __future__ import annotations

from typing import Any, Literal

Language = Literal["zh", "en"]

TEMPLATES: dict[str, dict[Language, str]] = {
    "account_code": {
        "zh": "【医保】{name}您好，您正在开通医保网上账户，验证码{code}，{until}前有效。请勿告诉他人；"
              "如非本人操作，请忽略本短信。",
        "en": "[MedCard] Dear {name}, your code to open your online account is {code}, valid until {until}. "
              "Tell no one; if this was not you, ignore this message.",
    },
    "card_lost": {
        "zh": "【医保】{name}您好，您尾号{card}的医保卡已于{date}{channel}挂失，"
              "挂失凭证号{voucher}，请妥善保存以备查询。",
        "en": "[MedCard] Dear {name}, your card ending {card} was reported lost {channel} on {date}. "
              "Loss voucher: {voucher}. Keep it for later enquiries.",
    },
    "replacement_requested": {
        "zh": "【医保】{name}您好，您尾号{card}医保卡的补卡申请已受理，回执号{receipt}。请持回执到开户银行加盖业务章。",
        "en": "[MedCard] Dear {name}, your application to replace card ending {card} was received, receipt "
              "{receipt}. Take the receipt to the bank that holds your card account to have it stamped.",
    },
    "bank_stamped": {
        "zh": "【医保】{name}您好，补卡回执{receipt}已由{branch}于{processed_at}加盖业务章。"
              "新卡制作完成后将短信通知您领取。",
        "en": "[MedCard] Dear {name}, receipt {receipt} was stamped by {branch} at {processed_at}. "
              "We will text you when your new card is ready for collection.",
    },
    "replacement_ready": {
        "zh": "【医保】{name}您好，您的新医保卡已制作完成（回执{receipt}），"
              "请自{ready_on}起携带{documents}到{location}领取。",
        "en": "[MedCard] Dear {name}, your new card is ready (receipt {receipt}). Collect it from {ready_on} "
              "at {location}; bring {documents}.",
    },
    "card_handed_out": {
        "zh": "【医保】{name}您好，您已领取尾号{card}的新医保卡，原卡（尾号{old_card}）已停用，"
              "个人账户及余额转入新卡。",
        "en": "[MedCard] Dear {name}, you collected your new card ending {card}. The old card ending {old_card} "
              "no longer works; your personal account and its balance move to the new card.",
    },
    "monthly_transfer": {
        "zh": "【医保】{name}您好，{month}医保个人账户划入{amount}元，当前余额{balance}元（卡尾号{card}）。",
        "en": "[MedCard] Dear {name}, CNY {amount} was credited to your personal account for {month}; "
              "balance CNY {balance} (card ending {card}).",
    },
    "purchase_authorised": {
        "zh": "【医保】{name}您好，您尾号{card}的医保卡于{date}在{merchant}消费{amount}元，余额{balance}元。",
        "en": "[MedCard] Dear {name}, card ending {card}: CNY {amount} paid at {merchant} on {date}; "
              "balance CNY {balance}.",
    },
    "purchase_declined": {
        "zh": "【医保】{name}您好，您尾号{card}的医保卡于{date}在{merchant}的{amount}元交易未成功：{reason}。",
        "en": "[MedCard] Dear {name}, card ending {card}: a transaction of CNY {amount} at {merchant} on {date} "
              "was refused: {reason}.",
    },
    "fraud_alert": {
        "zh": "【医保】紧急提醒：{name}您好，有人于{attempted_at}在{merchant}试图使用您已挂失的尾号{card}医保卡消费"
              "{amount}元，交易已被拒绝。如非本人操作，请立即联系医保经办机构。",
        "en": "[MedCard] URGENT: Dear {name}, someone tried to pay CNY {amount} at {merchant} at {attempted_at} "
              "with your card ending {card}, which is reported lost. The payment was refused. If this was not "
              "you, contact the insurance agency now.",
    },
    "fraud_alert_balance": {
        "zh": "【医保】紧急提醒：{name}您好，有人于{attempted_at}在{merchant}试图用您已挂失的尾号{card}医保卡查询余额，"
              "查询已被拒绝。如非本人操作，请立即联系医保经办机构。",
        "en": "[MedCard] URGENT: Dear {name}, someone tried to read the balance of your card ending {card}, which is "
              "reported lost, at {merchant} at {attempted_at}. The inquiry was refused. If this was not you, contact "
              "the insurance agency now.",
    },
    "password_changed": {
        "zh": "【医保】{name}您好，您尾号{card}医保卡的密码已{channel}修改。如非本人操作，请立即联系银行。",
        "en": "[MedCard] Dear {name}, the password of card ending {card} was changed {channel}. "
              "If this was not you, contact the bank now.",
    },
    "password_locked": {
        "zh": "【医保】{name}您好，您尾号{card}的医保卡因密码连续错误{failures}次已锁定，暂停刷卡消费。"
              "请携身份证到银行网点重置密码。",
        "en": "[MedCard] Dear {name}, card ending {card} is locked for payments after {failures} wrong "
              "passwords in a row. Bring your ID card to the bank to reset the password.",
    },
    "password_reset": {
        "zh": "【医保】{name}您好，您尾号{card}医保卡的密码已在银行柜台重置，可正常使用。"
              "如非本人操作，请立即联系银行。",
        "en": "[MedCard] Dear {name}, the password of card ending {card} was reset at the bank counter; "
              "the card can be used again. If this was not you, contact the bank now.",
    },
}

TERMS: dict[str, dict[str, dict[Language, str]]] = {
    # How a card was reported lost (cards: online, bank) or its password changed (bank: phone, counter, online).
    "channel": {
        "online": {"zh": "通过网上", "en": "online"},
        "bank": {"zh": "在银行网点", "en": "at the bank"},
        "counter": {"zh": "在银行柜台", "en": "at the bank counter"},
        "phone": {"zh": "通过电话", "en": "by phone"},
    },
    # The documents cards asks for (its APPLICATION_DOCUMENTS, BROKEN_CARD and PICKUP_DOCUMENTS).
    "documents": {
        "replacement_receipt": {"zh": "补卡回执", "en": "the replacement receipt"},
        "resident_id_card": {"zh": "居民身份证", "en": "your resident ID card"},
        "household_registration_book": {"zh": "户口簿", "en": "your household registration book"},
        "broken_card": {"zh": "损坏的原卡", "en": "the broken card"},
    },
    # Where cards hands out a new card (its PICKUP_LOCATION).
    "location": {
        "card_management_centre_of_the_medical_insurance_agency": {
            "zh": "医疗保险经办机构卡管理中心", "en": "the card management centre of the medical insurance agency"},
    },
    # The bank's POS response codes (its authorisation REASONS; 00 approves, 14 is never published).
    "reason": {
        "03": {"zh": "该商户未在银行登记", "en": "the merchant is not registered with the bank"},
        "14": {"zh": "卡号无效", "en": "invalid card number"},
        "41": {"zh": "该卡已挂失", "en": "the card is reported lost"},
        "43": {"zh": "该卡已注销", "en": "the card has been cancelled"},
        "51": {"zh": "余额不足", "en": "insufficient balance"},
        "55": {"zh": "密码错误", "en": "wrong password"},
        "57": {"zh": "医保卡不能取现或转账", "en": "the card cannot be used for cash or transfers"},
        "58": {"zh": "非定点医院或药店", "en": "not a designated hospital or pharmacy"},
        "62": {"zh": "该卡尚未设置密码", "en": "the card password has not been set"},
        "75": {"zh": "密码错误次数过多，卡已锁定", "en": "too many wrong passwords: the card is locked"},
    },
}
UNKNOWN_REASON: dict[Language, str] = {"zh": "银行返回代码{code}", "en": "{text}"}
"""A response code without wording here: its number in Chinese, the bank's own words in English."""

SEPARATOR: dict[Language, str] = {"zh": "、", "en": " and "}


def _key(value: str) -> str:
    return value.strip().lower().replace(" ", "_").replace("-", "_")


def _word(kind: str, value: str, language: Language) -> str:
    """A coded value in the language, or the value itself when it is not a known code."""
    return TERMS[kind].get(_key(value), {}).get(language, value)


def render(template: str, language: Language, name: str, params: dict[str, Any]) -> str:
    """The message text of a template for one person."""
    values = {k: v for k, v in params.items() if k not in TERMS}
    if "channel" in params:
        values["channel"] = _word("channel", params["channel"], language)
    if "location" in params:
        values["location"] = _word("location", params["location"], language)
    if "documents" in params:
        values["documents"] = SEPARATOR[language].join(_word("documents", d, language) for d in params["documents"])
    if "reason" in params:
        code, text = params["reason"]
        values["reason"] = (TERMS["reason"][code][language] if code in TERMS["reason"]
                            else UNKNOWN_REASON[language].format(code=code, text=text))
    return TEMPLATES[template][language].format(name=name, **values)
