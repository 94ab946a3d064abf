"""The card lifecycle as pure rules. The aggregate is the cardholder: every card of one
person in one document, so "at most one active card per person" is a single check.

States of a card (with the events that move it)::

    pending_activation --CardActivated--> active
    pending_activation | active --CardLost--> lost
    lost | active (broken card) --ReplacementRequested--> replacement_requested
    replacement_requested --(bank stamp) [CardLost] ReplacementProductionStarted--> in_production
    in_production --(ready_on reached) ReplacementReady--> replacement_ready
    replacement_ready --(collected) CardCancelled + CardIssued(new card, pending_activation)--> cancelled

A replacement card is issued pending activation: the bank moves the account and balance
to it at once, and it is activated when its new password is set (domain: a new card needs
its password set before first use).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

from shared.calendar import BusinessCalendar
from shared.domain import Conflict, NotFound
from shared.events import (
    CardActivated,
    CardCancelled,
    CardIssued,
    CardLost,
    EventData,
    ReplacementProductionStarted,
    ReplacementReady,
    ReplacementRequested,
)
from shared.events.cards import LossChannel
from shared.domain import Decision

from .model import REPLACING, Card, Cardholder, LossReport, Presented, Replacement

APPLICATION_DOCUMENTS = ["resident ID card", "household registration book"]
BROKEN_CARD = "broken card"
PICKUP_LOCATION = "card management centre of the medical insurance agency"
PICKUP_DOCUMENTS = ["replacement receipt", "resident ID card"]

Decide = Callable[[Cardholder | None], Decision[Cardholder]]


def known(state: Cardholder | None, person_id: str) -> Cardholder:
    if state is None:
        raise NotFound(f"person {person_id} is not registered (or not yet known to the cards service)")
    return state


def unknown(what: str, number: str) -> NotFound:
    """The answer for a number nobody has, and for a cardholder asking about someone else's."""
    return NotFound(f"no {what} {number}")


# The rules: each a guard named for it, refusing with its own kind of Conflict (code "conflict").

class ReplacementUnderWay(Conflict):
    """A card is being replaced: its replacement comes first."""


class LostCardIsReplaced(Conflict):
    """A card reported lost is followed by a replacement, not by a new card."""


class AlreadyHasCard(Conflict):
    """At most one card per person that is not cancelled."""


class NotPendingActivation(Conflict):
    """Only a card pending activation can be activated."""


class NothingToBlock(Conflict):
    """A cancelled card cannot be reported lost."""


class ActiveCardNotBroken(Conflict):
    """An active card is replaced only when it is brought in broken."""


class NotReplaceable(Conflict):
    """Only a lost card or a broken one can be replaced."""


class ReplacementNotRequested(Conflict):
    """The bank stamps only a requested replacement."""


class AlreadyCollected(Conflict):
    """A replacement card is handed out once."""


class NotReadyToCollect(Conflict):
    """A replacement card is handed out once it is ready."""


def check_not_being_replaced(card: Card) -> None:
    """No new card while one of the person's cards is being replaced."""
    if card.state in REPLACING:
        assert card.replacement is not None
        raise ReplacementUnderWay(f"a replacement of card {card.card_number} is under way "
                                  f"(receipt {card.replacement.receipt_number})")


def check_lost_card_is_replaced(card: Card) -> None:
    """A card reported lost is followed by its replacement, never by a new issue."""
    if card.state == "lost":
        raise LostCardIsReplaced(f"card {card.card_number} was reported lost: a new card comes through a replacement")


def check_card_is_cancelled(person_id: str, card: Card) -> None:
    """An earlier card is no obstacle to a new one once it is cancelled."""
    if card.state != "cancelled":
        raise AlreadyHasCard(f"person {person_id} already has card {card.card_number} ({card.state}): "
                             "at most one active card per person")


def check_one_active_card(holder: Cardholder) -> None:
    """A person gets a new card only when every card they held is cancelled (a lost one or
    one being replaced is followed by its replacement)."""
    for old in holder.cards:
        check_not_being_replaced(old)
        check_lost_card_is_replaced(old)
        check_card_is_cancelled(holder.person_id, old)


def check_pending_activation(card: Card) -> None:
    """Only a card pending activation becomes active."""
    if card.state != "pending_activation":
        raise NotPendingActivation(
            f"card {card.card_number} is {card.state}: only a card pending activation can be activated")


def check_not_cancelled(card: Card) -> None:
    """A cancelled card has nothing left to block."""
    if card.state == "cancelled":
        raise NothingToBlock(f"card {card.card_number} is cancelled: there is nothing to block")


def check_no_replacement_under_way(card: Card) -> None:
    """One replacement at a time for a card."""
    if card.state in REPLACING:
        assert card.replacement is not None
        raise ReplacementUnderWay(f"a replacement of card {card.card_number} is already under way "
                                  f"(receipt {card.replacement.receipt_number})")


def check_broken_if_active(card: Card, broken_card: bool) -> None:
    """An active card is replaced only when presented broken (otherwise it is reported lost first)."""
    if card.state == "active" and not broken_card:
        raise ActiveCardNotBroken(
            f"card {card.card_number} is active: report it lost first, or present the broken card")


def check_lost_or_active(card: Card) -> None:
    """Only a lost card, or an active one brought in broken, can be replaced."""
    if card.state not in ("lost", "active"):
        raise NotReplaceable(
            f"card {card.card_number} is {card.state}: only a lost card or a broken one can be replaced")


def check_replacement_requested(card: Card, receipt_number: str) -> Replacement:
    """The bank stamps a replacement that was requested and is not yet stamped; returns it."""
    if card.state != "replacement_requested" or card.replacement is None:
        raise ReplacementNotRequested(
            f"replacement {receipt_number} is {card.state}: only a requested replacement is stamped")
    return card.replacement


def check_not_collected(holder: Cardholder, card: Card, receipt_number: str) -> None:
    """A replacement card is handed out once (the answer names the card handed out and when)."""
    rep = card.replacement
    if rep is not None and rep.new_card_number is not None:
        new_card = holder.card(rep.new_card_number)
        raise AlreadyCollected(f"replacement {receipt_number} was already collected: the new card "
                               f"{new_card.card_number} was handed out on {new_card.issued_on}")


def check_ready_to_collect(card: Card, receipt_number: str) -> Replacement:
    """A replacement card is handed out once it is ready; returns the replacement."""
    rep = card.replacement
    if card.state != "replacement_ready" or rep is None:
        when = f", ready on {rep.ready_on}" if rep and rep.ready_on else ""
        raise NotReadyToCollect(f"replacement {receipt_number} is not ready to collect: the card is {card.state}{when}")
    return rep


def ready_on(calendar: BusinessCalendar, stamped_on: date, wait_working_days: int) -> date:
    """The day a replacement card is ready: that many working days after the bank's stamp."""
    return calendar.add_working_days(stamped_on, wait_working_days)


def register_holder(*, person_id: str, name: str, id_number_digest: str, mobile: str) -> Decide:
    """Project identity's PersonRegistered: the details a loss report is checked against."""
    def decide(state: Cardholder | None) -> Decision[Cardholder]:
        holder = Cardholder(person_id=person_id, name=name, id_number_digest=id_number_digest, mobile=mobile,
                            cards=state.cards if state else [])
        return Decision(holder)
    return decide


def issue_card(*, person_id: str, card_number: str, agent_bank: str, today: date) -> Decide:
    """A person's first card (or one after all theirs were closed), pending activation."""
    def decide(state: Cardholder | None) -> Decision[Cardholder]:
        holder = known(state, person_id)
        check_one_active_card(holder)
        card = Card(card_number=card_number, agent_bank=agent_bank, state="pending_activation", issued_on=today)
        event = CardIssued(person_id=person_id, card_number=card_number, agent_bank=agent_bank, replaces=None)
        return Decision(holder.with_card(card), [event], card)
    return decide


def activate(*, person_id: str, card_number: str) -> Decide:
    """The bank set the card's password: the card can be used. A repeat changes nothing."""
    def decide(state: Cardholder | None) -> Decision[Cardholder]:
        holder = known(state, person_id)
        card = holder.card(card_number)
        if card.state == "active":
            return Decision(holder, [], card)
        check_pending_activation(card)
        card = card.model_copy(update={"state": "active"})
        return Decision(holder.with_card(card), [CardActivated(person_id=person_id, card_number=card_number)], card)
    return decide


def report_loss(*, person_id: str, card_number: str | None, presented: Presented, channel: LossChannel,
                voucher: str, today: date, now: datetime, letter_reference: str | None = None) -> Decide:
    """Block a card at once (its current one when no number is given). A card already
    reported lost keeps its voucher and nothing is published again."""
    def decide(state: Cardholder | None) -> Decision[Cardholder]:
        holder = known(state, person_id)
        holder.verify(presented)
        card = holder.card(card_number) if card_number else holder.current_card()
        check_not_cancelled(card)
        if card.loss is not None:
            return Decision(holder, [], card)
        loss = LossReport(voucher=voucher, channel=channel, business_date=today, reported_at=now,
                          letter_reference=letter_reference)
        new_state = "lost" if card.state in ("pending_activation", "active") else card.state
        card = card.model_copy(update={"state": new_state, "loss": loss})
        event = CardLost(person_id=person_id, card_number=card.card_number, channel=channel, voucher=voucher,
                         business_date=today, letter_reference=letter_reference)
        return Decision(holder.with_card(card), [event], card)
    return decide


def confirm_block(*, person_id: str, card_number: str, blocked_at: datetime) -> Decide:
    """The bank's CardBlocked came back: the card is stopped at the bank (a repeat changes nothing)."""
    def decide(state: Cardholder | None) -> Decision[Cardholder]:
        holder = known(state, person_id)
        card = holder.card(card_number)
        if card.bank_blocked_at is not None:
            return Decision(None, [], card)
        card = card.model_copy(update={"bank_blocked_at": blocked_at})
        return Decision(holder.with_card(card), [], card)
    return decide


def request_replacement(*, person_id: str, card_number: str, presented: Presented, receipt_number: str,
                        broken_card: bool, today: date) -> Decide:
    """The agency takes the application for a lost card, or for an active card brought in broken."""
    def decide(state: Cardholder | None) -> Decision[Cardholder]:
        holder = known(state, person_id)
        holder.verify(presented)
        card = holder.card(card_number)
        check_no_replacement_under_way(card)
        check_broken_if_active(card, broken_card)
        check_lost_or_active(card)
        documents = APPLICATION_DOCUMENTS + ([BROKEN_CARD] if broken_card else [])
        replacement = Replacement(receipt_number=receipt_number, documents=documents, requested_on=today)
        card = card.model_copy(update={"state": "replacement_requested", "replacement": replacement})
        event = ReplacementRequested(person_id=person_id, card_number=card_number, receipt_number=receipt_number,
                                     documents=documents, business_date=today)
        return Decision(holder.with_card(card), [event], card)
    return decide


def _make_ready(holder: Cardholder, today: date) -> tuple[Cardholder, list[EventData]]:
    events: list[EventData] = []
    for card in holder.cards:
        rep = card.replacement
        if card.state == "in_production" and rep and rep.ready_on and rep.ready_on <= today:
            holder = holder.with_card(card.model_copy(update={"state": "replacement_ready"}))
            events.append(ReplacementReady(
                person_id=holder.person_id, card_number=card.card_number, receipt_number=rep.receipt_number,
                ready_on=rep.ready_on, pickup_location=PICKUP_LOCATION, documents_required=PICKUP_DOCUMENTS,
            ))
    return holder, events


def start_production(*, person_id: str, receipt_number: str, stamped_on: date, calendar: BusinessCalendar,
                     wait_working_days: int, voucher: str, now: datetime, today: date) -> Decide:
    """The bank stamped the receipt: production starts (and the loss is reported if it was not)."""
    def decide(state: Cardholder | None) -> Decision[Cardholder]:
        holder = known(state, person_id)
        card = holder.by_receipt(receipt_number)
        requested = check_replacement_requested(card, receipt_number)
        events: list[EventData] = []
        loss = card.loss
        if loss is None:
            loss = LossReport(voucher=voucher, channel="bank", business_date=stamped_on, reported_at=now)
            events.append(CardLost(person_id=person_id, card_number=card.card_number, channel="bank",
                                   voucher=voucher, business_date=stamped_on, letter_reference=None))
        ready = ready_on(calendar, stamped_on, wait_working_days)
        replacement = requested.model_copy(update={"stamped_on": stamped_on, "ready_on": ready})
        card = card.model_copy(update={"state": "in_production", "loss": loss, "replacement": replacement})
        events.append(ReplacementProductionStarted(person_id=person_id, card_number=card.card_number,
                                                   receipt_number=receipt_number, stamped_on=stamped_on,
                                                   ready_on=ready))
        holder, ready_events = _make_ready(holder.with_card(card), today)
        return Decision(holder, events + ready_events, card)
    return decide


def mark_ready(*, person_id: str, today: date) -> Decide:
    """The business date moved: every replacement whose ready date has come is ready."""
    def decide(state: Cardholder | None) -> Decision[Cardholder]:
        holder, events = _make_ready(known(state, person_id), today)
        return Decision(holder, events)
    return decide


def collect(*, person_id: str, receipt_number: str, presented: Presented, new_card_number: str,
            today: date) -> Decide:
    """Hand out the new card: the old one is cancelled and the new one replaces it (pending activation)."""
    def decide(state: Cardholder | None) -> Decision[Cardholder]:
        holder = known(state, person_id)
        old = holder.by_receipt(receipt_number)
        holder.verify(presented)
        check_not_collected(holder, old, receipt_number)
        rep = check_ready_to_collect(old, receipt_number)
        old = old.model_copy(update={"state": "cancelled", "replaced_by": new_card_number,
                                     "replacement": rep.model_copy(update={"new_card_number": new_card_number})})
        new = Card(card_number=new_card_number, agent_bank=old.agent_bank, state="pending_activation", issued_on=today,
                   replaces=old.card_number)
        events: list[EventData] = [
            CardCancelled(person_id=person_id, card_number=old.card_number, reason="replaced",
                          replaced_by=new_card_number),
            CardIssued(person_id=person_id, card_number=new_card_number, agent_bank=new.agent_bank,
                       replaces=old.card_number),
        ]
        return Decision(holder.with_card(old).with_card(new), events, new)
    return decide
