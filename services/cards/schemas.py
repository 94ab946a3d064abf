"""Request and response bodies of the cards API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.card_state import STATE_DESCRIPTION, CardState
from shared.errors import Error, errors  # noqa: F401  (re-exported for the routes
from shared.events.cards import LossChannel
from shared.text import IdNumberText, Text

from .model import Card, ReplacementStatus

DEFAULT_AGENT_BANK = "Bank of China Beijing Branch"
EXAMPLE_CARD = "6216610000000000018"
EXAMPLE_ID_NUMBER = "11010519491231002X"
CardNumberText = Annotated[str, Text(40)]




class CardCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"person_id": "P3f9a0c1d2e4b5a6c",
                                                               "agent_bank": DEFAULT_AGENT_BANK}]})
    person_id: Annotated[str, Text(64)]
    agent_bank: Annotated[str, Text(100)] = DEFAULT_AGENT_BANK


BUSINESS_DATE = "The business date of the report (the business clock's, which the simulation moves)"
REPORTED_AT = "The real instant (UTC) the report was recorded; its business date is business_date"
READY_ON = ("The business date the new card is ready: the 15th working day after stamped_on (the setting "
            "MEDCARD_REPLACEMENT_WAIT_WORKING_DAYS, 15 by default). stamped_on itself never counts; Saturdays, "
            "Sundays and the public holidays listed by GET /v1/calendar are not working days. E.g. stamped on "
            "Monday 2027-05-03 (inside the Labour Day holiday, 1-5 May): ready on 2027-05-26")


class LossPublic(BaseModel):
    voucher: str
    channel: LossChannel
    business_date: date = Field(description=BUSINESS_DATE)
    reported_at: datetime = Field(description=REPORTED_AT)
    letter_reference: str | None


class ReplacementPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "receipt_number": "R104729384756", "person_id": "P3f9a0c1d2e4b5a6c", "card_number": EXAMPLE_CARD,
        "state": "lost", "status": "in_production", "documents": ["resident ID card", "household registration book"],
        "requested_on": "2026-01-05", "stamped_on": "2026-01-06", "ready_on": "2026-01-27", "new_card_number": None,
    }]})
    receipt_number: str
    person_id: str
    card_number: str = Field(description="The card being replaced")
    state: CardState = Field(description="The replaced card's state. " + STATE_DESCRIPTION)
    status: ReplacementStatus = Field(description="requested (receipt issued), in_production (the bank stamped "
                                                  "the receipt), ready (to collect), collected")
    documents: list[str]
    requested_on: date
    stamped_on: date | None
    ready_on: date | None = Field(description=READY_ON)
    new_card_number: str | None


class CardPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "card_number": EXAMPLE_CARD, "person_id": "P3f9a0c1d2e4b5a6c", "agent_bank": DEFAULT_AGENT_BANK,
        "state": "lost", "replacement_status": None, "issued_on": "2026-01-05", "replaces": None,
        "replaced_by": None,
        "loss": {"voucher": "V583920174625", "channel": "online", "business_date": "2026-01-05",
                 "reported_at": "2026-01-05T02:13:09Z", "letter_reference": None},
        "receipt_number": None,
    }]})
    card_number: str
    person_id: str
    agent_bank: str
    state: CardState = Field(description=STATE_DESCRIPTION)
    replacement_status: ReplacementStatus | None = Field(
        description="Where the application for this card's replacement stands (receipt_number), if any")
    issued_on: date
    replaces: str | None
    replaced_by: str | None
    loss: LossPublic | None
    receipt_number: str | None


class CardsPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"count": 1, "data": [{
        "card_number": EXAMPLE_CARD, "person_id": "P3f9a0c1d2e4b5a6c", "agent_bank": DEFAULT_AGENT_BANK,
        "state": "active", "replacement_status": None, "issued_on": "2026-01-05", "replaces": None,
        "replaced_by": None, "loss": None, "receipt_number": None,
    }]}]})
    data: list[CardPublic]
    count: int


class LossReportOnline(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Wang Fang", "id_number": EXAMPLE_ID_NUMBER,
                                                               "mobile": "13800138000"}]})
    name: Annotated[str, Text(100)]
    id_number: IdNumberText
    mobile: Annotated[str, Text(20)]


class LossReportAtBank(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "card_number": EXAMPLE_CARD, "id_number": EXAMPLE_ID_NUMBER, "letter_reference": "HX-2026-0031",
    }]})
    card_number: CardNumberText
    id_number: IdNumberText
    letter_reference: Annotated[str, Text(
        60, description="The employer's letter of proof, stamped by the medical insurance office")]


class LossReportQuery(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"voucher": "V583920174625",
                                                               "id_number": EXAMPLE_ID_NUMBER}]})
    voucher: Annotated[str, Text(40)]
    id_number: Annotated[IdNumberText, Field(description="The reporter's resident ID number")]


BlockStatus = Literal["confirmed", "pending"]
BLOCKED = ("True: the bank has stopped the card (its CardBlocked came back before this answer): no purchase on it "
           "is approved from now on. False: the report is taken and the bank is stopping the card, but had not "
           "confirmed it within the wait (MEDCARD_LOSS_BLOCK_WAIT_SECONDS); report again, or query the voucher, "
           "to see it confirmed")


class LossReportPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "voucher": "V583920174625", "card_number_masked": "6216***********0018", "channel": "online",
        "business_date": "2026-01-05", "reported_at": "2026-01-05T02:13:09Z", "letter_reference": None,
        "card_state": "lost", "blocked": True, "block": "confirmed",
    }]})
    voucher: str
    card_number_masked: str
    channel: LossChannel
    business_date: date = Field(description=BUSINESS_DATE)
    reported_at: datetime = Field(description=REPORTED_AT)
    letter_reference: str | None
    card_state: CardState = Field(description=STATE_DESCRIPTION)
    blocked: bool = Field(description=BLOCKED)
    block: BlockStatus = Field(description="'confirmed' when blocked, else 'pending'")


class LossReportStatus(BaseModel):
    """What the public query tells: masked, and nothing that names or places the holder."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "voucher": "V583920174625", "card_number_masked": "6216***********0018", "channel": "online",
        "business_date": "2026-01-05", "card_state": "lost", "blocked": True, "block": "confirmed",
    }]})
    voucher: str
    card_number_masked: str
    channel: LossChannel
    business_date: date
    card_state: CardState
    blocked: bool = Field(description=BLOCKED)
    block: BlockStatus = Field(description="'confirmed' when blocked, else 'pending'")


class ReplacementCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"card_number": EXAMPLE_CARD, "id_number": EXAMPLE_ID_NUMBER, "broken_card": False},
    ]})
    card_number: CardNumberText
    id_number: Annotated[IdNumberText, Field(description="From the ID card shown at the counter")]
    broken_card: bool = Field(False, description="The holder hands in the broken card (an active card)")


class ReplacementCollect(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"id_number": EXAMPLE_ID_NUMBER}]})
    id_number: IdNumberText


def mask_card(number: str) -> str:
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


def card_public(person_id: str, card: Card) -> CardPublic:
    loss = LossPublic(**card.loss.model_dump()) if card.loss else None
    return CardPublic(
        card_number=card.card_number, person_id=person_id, agent_bank=card.agent_bank, state=card.shared_state,
        replacement_status=card.replacement_status, issued_on=card.issued_on, replaces=card.replaces,
        replaced_by=card.replaced_by, loss=loss,
        receipt_number=card.replacement.receipt_number if card.replacement else None,
    )


def loss_public(card: Card) -> LossReportPublic:
    assert card.loss is not None
    blocked = card.bank_blocked_at is not None
    return LossReportPublic(card_number_masked=mask_card(card.card_number), card_state=card.shared_state,
                            blocked=blocked, block="confirmed" if blocked else "pending", **card.loss.model_dump())


def loss_status(card: Card) -> LossReportStatus:
    assert card.loss is not None
    blocked = card.bank_blocked_at is not None
    return LossReportStatus(voucher=card.loss.voucher, card_number_masked=mask_card(card.card_number),
                            channel=card.loss.channel, business_date=card.loss.business_date,
                            card_state=card.shared_state, blocked=blocked, block="confirmed" if blocked else "pending")


def replacement_public(person_id: str, card: Card) -> ReplacementPublic:
    assert card.replacement is not None
    assert card.replacement_status is not None
    return ReplacementPublic(person_id=person_id, card_number=card.card_number, state=card.shared_state,
                             status=card.replacement_status, **card.replacement.model_dump())
