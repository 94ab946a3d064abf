"""Request and response bodies of the cards API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import Error, errors  # noqa: F401  (re-exported for the routes)
from shared.events.cards import LossChannel
from shared.text import NotBlank

from .model import Card, CardState

DEFAULT_AGENT_BANK = "Bank of China Beijing Branch"
EXAMPLE_CARD = "6216610000000000018"
EXAMPLE_ID_NUMBER = "11010519491231002X"




class CardCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"person_id": "P3f9a0c1d2e4b5a6c",
                                                               "agent_bank": DEFAULT_AGENT_BANK}]})
    person_id: str
    agent_bank: Annotated[str, Field(min_length=1, max_length=100), NotBlank] = DEFAULT_AGENT_BANK


class LossPublic(BaseModel):
    voucher: str
    channel: LossChannel
    business_date: date
    reported_at: datetime
    letter_reference: str | None


class ReplacementPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "receipt_number": "R104729384756", "person_id": "P3f9a0c1d2e4b5a6c", "card_number": EXAMPLE_CARD,
        "card_state": "in_production", "documents": ["resident ID card", "household registration book"],
        "requested_on": "2026-01-05", "stamped_on": "2026-01-06", "ready_on": "2026-01-27", "new_card_number": None,
    }]})
    receipt_number: str
    person_id: str
    card_number: str
    card_state: CardState
    documents: list[str]
    requested_on: date
    stamped_on: date | None
    ready_on: date | None
    new_card_number: str | None


class CardPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "card_number": EXAMPLE_CARD, "person_id": "P3f9a0c1d2e4b5a6c", "agent_bank": DEFAULT_AGENT_BANK,
        "state": "lost", "issued_on": "2026-01-05", "replaces": None, "replaced_by": None,
        "loss": {"voucher": "V583920174625", "channel": "online", "business_date": "2026-01-05",
                 "reported_at": "2026-01-05T02:13:09Z", "letter_reference": None},
        "receipt_number": None,
    }]})
    card_number: str
    person_id: str
    agent_bank: str
    state: CardState
    issued_on: date
    replaces: str | None
    replaced_by: str | None
    loss: LossPublic | None
    receipt_number: str | None


class CardsPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"count": 1, "data": [{
        "card_number": EXAMPLE_CARD, "person_id": "P3f9a0c1d2e4b5a6c", "agent_bank": DEFAULT_AGENT_BANK,
        "state": "active", "issued_on": "2026-01-05", "replaces": None, "replaced_by": None, "loss": None,
        "receipt_number": None,
    }]}]})
    data: list[CardPublic]
    count: int


class LossReportOnline(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Wang Fang", "id_number": EXAMPLE_ID_NUMBER,
                                                               "mobile": "13800138000"}]})
    name: Annotated[str, Field(min_length=1, max_length=100), NotBlank]
    id_number: str = Field(min_length=1, max_length=40)
    mobile: str = Field(min_length=1, max_length=20)


class LossReportAtBank(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "card_number": EXAMPLE_CARD, "id_number": EXAMPLE_ID_NUMBER, "letter_reference": "HX-2026-0031",
    }]})
    card_number: str
    id_number: str = Field(min_length=1, max_length=40)
    letter_reference: str = Field(min_length=1, max_length=60,
                                  description="The employer's letter of proof, stamped by the medical insurance office")


class LossReportQuery(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"voucher": "V583920174625",
                                                               "id_number": EXAMPLE_ID_NUMBER}]})
    voucher: str = Field(min_length=1, max_length=40)
    id_number: str = Field(min_length=1, max_length=40, description="The reporter's resident ID number")


BlockStatus = Literal["confirmed", "pending"]


class LossReportPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "voucher": "V583920174625", "card_number_masked": "6216***********0018", "channel": "online",
        "business_date": "2026-01-05", "reported_at": "2026-01-05T02:13:09Z", "letter_reference": None,
        "card_state": "lost", "blocked": True, "block": "confirmed",
    }]})
    voucher: str
    card_number_masked: str
    channel: LossChannel
    business_date: date
    reported_at: datetime
    letter_reference: str | None
    card_state: CardState
    blocked: bool = Field(description=(
        "True: the bank has stopped the card (its CardBlocked came back before this answer): no purchase on it "
        "is approved from now on. False: the report is taken and the bank is stopping the card, but had not "
        "confirmed it within the wait (MEDCARD_LOSS_BLOCK_WAIT_SECONDS); report again, or query the voucher, "
        "to see it confirmed"))
    block: BlockStatus = Field(description="'confirmed' when blocked, else 'pending'")


class ReplacementCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"card_number": EXAMPLE_CARD, "id_number": EXAMPLE_ID_NUMBER, "broken_card": False},
    ]})
    card_number: str
    id_number: str = Field(min_length=1, max_length=40, description="From the ID card shown at the counter")
    broken_card: bool = Field(False, description="The holder hands in the broken card (an active card)")


class ReplacementCollect(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"id_number": EXAMPLE_ID_NUMBER}]})
    id_number: str = Field(min_length=1, max_length=40)


def mask_card(number: str) -> str:
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


def card_public(person_id: str, card: Card) -> CardPublic:
    loss = LossPublic(**card.loss.model_dump()) if card.loss else None
    return CardPublic(
        card_number=card.card_number, person_id=person_id, agent_bank=card.agent_bank, state=card.state,
        issued_on=card.issued_on, replaces=card.replaces, replaced_by=card.replaced_by, loss=loss,
        receipt_number=card.replacement.receipt_number if card.replacement else None,
    )


def loss_public(card: Card) -> LossReportPublic:
    assert card.loss is not None
    blocked = card.bank_blocked_at is not None
    return LossReportPublic(card_number_masked=mask_card(card.card_number), card_state=card.state,
                            blocked=blocked, block="confirmed" if blocked else "pending", **card.loss.model_dump())


def replacement_public(person_id: str, card: Card) -> ReplacementPublic:
    assert card.replacement is not None
    return ReplacementPublic(person_id=person_id, card_number=card.card_number, card_state=card.state,
                             **card.replacement.model_dump())
