"""The state of the cards service: a cardholder (one person) and every card they have held.

A card's ``state`` is its step in the cards service's lifecycle (``Stage``); ``loss`` (set
once, never cleared) says whether it was reported lost, and ``bank_blocked_at`` whether the
bank has confirmed that it stopped it; ``replacement`` follows the application for the card
replacing it. What the API shows is the shared vocabulary (``shared.card_state``):
``Card.shared_state`` and ``Card.replacement_status``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field, computed_field

from shared.card_state import CardState
from shared.domain import Forbidden, NotFound
from shared.events.cards import LossChannel

Stage = Literal["pending_activation", "active", "lost", "replacement_requested", "in_production",
                "replacement_ready", "cancelled"]
"""A card's step in the cards service's lifecycle (the state machine in ``domain``)."""
REPLACING: tuple[Stage, ...] = ("replacement_requested", "in_production", "replacement_ready")
ReplacementStatus = Literal["requested", "in_production", "ready", "collected"]
REPLACEMENT_STATUS: dict[Stage, ReplacementStatus] = {
    "replacement_requested": "requested", "in_production": "in_production", "replacement_ready": "ready",
    "cancelled": "collected",
}
NO_MATCH = "the details given do not match the cardholder"


class LossReport(BaseModel):
    voucher: str
    channel: LossChannel
    business_date: date
    reported_at: datetime
    letter_reference: str | None = None


class Replacement(BaseModel):
    receipt_number: str
    documents: list[str]
    requested_on: date
    stamped_on: date | None = None
    ready_on: date | None = None
    new_card_number: str | None = None


class Card(BaseModel):
    card_number: str
    agent_bank: str
    state: Stage
    issued_on: date
    replaces: str | None = None
    replaced_by: str | None = None
    loss: LossReport | None = None
    replacement: Replacement | None = None
    bank_blocked_at: datetime | None = None
    """When the bank stopped the card (its CardBlocked, consumed from the bank topic): from
    then on the bank authorises no purchase on it."""

    @property
    def shared_state(self) -> CardState:
        """The card's state in the vocabulary every service shares: a card under replacement
        is lost if it was reported lost (a broken card is active until the bank's stamp
        reports it lost)."""
        if self.state == "cancelled":
            return "cancelled"
        if self.loss is not None:
            return "lost"
        return "pending_activation" if self.state == "pending_activation" else "active"

    @property
    def replacement_status(self) -> ReplacementStatus | None:
        """Where the application for this card's replacement stands, if there is one."""
        return REPLACEMENT_STATUS.get(self.state) if self.replacement is not None else None


@dataclass(frozen=True)
class Presented:
    """What a person shows to prove who they are; None fields are not checked."""

    id_number_digest: str
    name: str | None = None
    mobile: str | None = None


class Cardholder(BaseModel):
    person_id: str
    name: str
    id_number_digest: str
    mobile: str
    cards: list[Card] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def in_production(self) -> bool:
        """A replacement card of this person is being made (indexed: the daily readiness check)."""
        return any(card.state == "in_production" for card in self.cards)

    def card(self, card_number: str) -> Card:
        for card in self.cards:
            if card.card_number == card_number:
                return card
        raise NotFound(f"card {card_number} is not a card of person {self.person_id}")

    def current_card(self) -> Card:
        """The latest card that is not cancelled."""
        for card in reversed(self.cards):
            if card.state != "cancelled":
                return card
        raise NotFound(f"person {self.person_id} holds no card")

    def by_receipt(self, receipt_number: str) -> Card:
        for card in self.cards:
            if card.replacement and card.replacement.receipt_number == receipt_number:
                return card
        raise NotFound(f"no replacement with receipt {receipt_number}")

    def by_voucher(self, voucher: str) -> Card | None:
        return next((c for c in self.cards if c.loss and c.loss.voucher == voucher), None)

    def verify(self, presented: Presented) -> None:
        """Raise Forbidden unless every detail presented is the holder's (without saying which):
        a well-formed ID card of someone else is a 403, as at the bank's counter."""
        if (presented.id_number_digest != self.id_number_digest
                or (presented.name is not None and presented.name.strip() != self.name)
                or (presented.mobile is not None and presented.mobile.strip() != self.mobile)):
            raise Forbidden(NO_MATCH)

    def with_card(self, card: Card) -> Cardholder:
        """A copy with ``card`` replacing the card of the same number (or added)."""
        if any(c.card_number == card.card_number for c in self.cards):
            cards = [card if c.card_number == card.card_number else c for c in self.cards]
        else:
            cards = [*self.cards, card]
        return self.model_copy(update={"cards": cards})
