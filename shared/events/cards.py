"""Events of the cards service: the card lifecycle, loss reports and replacement."""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Literal

from pydantic import Field

from .base import EventData, MaybePersonal, Personal

LossChannel = Literal["online", "bank"]


class _Cards(EventData):
    service: ClassVar[str] = "cards"


class CardIssued(_Cards):
    person_id: Personal
    card_number: Personal
    agent_bank: str
    replaces: MaybePersonal = Field(None, description="The card number this card replaces, if any")


class CardActivated(_Cards):
    person_id: Personal
    card_number: Personal


class CardLost(_Cards):
    person_id: Personal
    card_number: Personal
    channel: LossChannel
    voucher: str
    business_date: date
    letter_reference: str | None = Field(None, description="Employer's letter of proof (bank channel)")


class ReplacementRequested(_Cards):
    person_id: Personal
    card_number: Personal
    receipt_number: str
    documents: list[str]
    business_date: date


class ReplacementProductionStarted(_Cards):
    person_id: Personal
    card_number: Personal
    receipt_number: str
    stamped_on: date
    ready_on: date


class ReplacementReady(_Cards):
    person_id: Personal
    card_number: Personal
    receipt_number: str
    ready_on: date
    pickup_location: str
    documents_required: list[str]


class CardCancelled(_Cards):
    person_id: Personal
    card_number: Personal
    reason: Literal["replaced", "closed"]
    replaced_by: MaybePersonal = None
