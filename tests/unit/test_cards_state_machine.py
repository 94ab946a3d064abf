"""The card state machine: every legal transition and the refusal of every illegal one."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.cards import domain
from services.cards.model import NO_MATCH, Cardholder, Presented
from services.cards.schemas import loss_public
from shared.calendar import BusinessCalendar
from shared.domain import Conflict, Forbidden, NotFound
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

PID, CARD, NEW_CARD = "P1", "6216610000000000018", "6216610000000000026"
DIGEST = "d" * 64
TODAY = date(2026, 1, 5)  # a Monday
NOW = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
ME = Presented(id_number_digest=DIGEST, name="Wang Fang", mobile="13800138000")
CALENDAR = BusinessCalendar()
STATES = ["pending_activation", "active", "lost", "replacement_requested", "in_production", "replacement_ready",
          "cancelled"]


def apply(holder: Cardholder | None, decide: domain.Decide) -> tuple[Cardholder, list[EventData]]:
    decision = decide(holder)
    assert decision.state is not None
    return decision.state, decision.events


def registered() -> Cardholder:
    holder, events = apply(None, domain.register_holder(person_id=PID, name="Wang Fang", id_number_digest=DIGEST,
                                                        mobile="13800138000"))
    assert events == []
    return holder


def issue(holder: Cardholder, number: str = CARD) -> domain.Decide:
    return domain.issue_card(person_id=PID, card_number=number, agent_bank="BOC", today=TODAY)


def lose(voucher: str = "V1", card_number: str | None = None, presented: Presented = ME) -> domain.Decide:
    return domain.report_loss(person_id=PID, card_number=card_number, presented=presented, channel="online",
                              voucher=voucher, today=TODAY, now=NOW)


def replace(broken: bool = False) -> domain.Decide:
    return domain.request_replacement(person_id=PID, card_number=CARD, presented=ME, receipt_number="R1",
                                      broken_card=broken, today=TODAY)


def stamp(today: date = TODAY) -> domain.Decide:
    return domain.start_production(person_id=PID, receipt_number="R1", stamped_on=TODAY, calendar=CALENDAR,
                                   wait_working_days=15, voucher="VB", now=NOW, today=today)


def collect(presented: Presented = ME) -> domain.Decide:
    return domain.collect(person_id=PID, receipt_number="R1", presented=presented, new_card_number=NEW_CARD,
                          today=date(2026, 2, 1))


def holder_in(state: str) -> Cardholder:
    """A holder whose card CARD has reached ``state`` along the usual path."""
    steps = {
        "pending_activation": [],
        "active": [domain.activate(person_id=PID, card_number=CARD)],
        "lost": [lose()],
        "replacement_requested": [lose(), replace()],
        "in_production": [lose(), replace(), stamp()],
        "replacement_ready": [lose(), replace(), stamp(), domain.mark_ready(person_id=PID, today=date(2026, 1, 26))],
        "cancelled": [lose(), replace(), stamp(), domain.mark_ready(person_id=PID, today=date(2026, 1, 26)),
                      collect()],
    }[state]
    holder, _ = apply(registered(), issue(registered()))
    for step in steps:
        holder, _ = apply(holder, step)
    assert holder.card(CARD).state == state
    return holder


def types(events: list[EventData]) -> list[type]:
    return [type(e) for e in events]


# Issue

def test_a_registered_person_gets_a_card_pending_activation() -> None:
    holder, events = apply(registered(), issue(registered()))
    assert holder.card(CARD).state == "pending_activation"
    assert events == [CardIssued(person_id=PID, card_number=CARD, agent_bank="BOC", replaces=None)]


def test_a_person_the_cards_service_does_not_know_gets_no_card() -> None:
    with pytest.raises(NotFound, match="not registered"):
        issue(registered())(None)


@pytest.mark.parametrize("state", [s for s in STATES if s != "cancelled"])
def test_no_second_card_is_issued_while_a_card_is_not_cancelled(state: str) -> None:
    with pytest.raises(Conflict):
        issue(registered(), NEW_CARD)(holder_in(state))


def test_a_lost_card_is_followed_by_a_replacement_not_by_a_new_card() -> None:
    with pytest.raises(Conflict, match="through a replacement"):
        issue(registered(), NEW_CARD)(holder_in("lost"))


def test_a_card_may_be_issued_once_every_earlier_card_is_cancelled() -> None:
    closed = holder_in("cancelled").card(CARD)
    holder = registered().model_copy(update={"cards": [closed]})
    holder, events = apply(holder, issue(holder, NEW_CARD))
    assert types(events) == [CardIssued] and holder.card(NEW_CARD).state == "pending_activation"


# Activation (the bank's CardPasswordSet)

def test_setting_the_password_activates_a_card_pending_activation() -> None:
    holder, events = apply(holder_in("pending_activation"), domain.activate(person_id=PID, card_number=CARD))
    assert holder.card(CARD).state == "active"
    assert types(events) == [CardActivated]


def test_activating_an_active_card_again_changes_nothing() -> None:
    holder, events = apply(holder_in("active"), domain.activate(person_id=PID, card_number=CARD))
    assert events == [] and holder.card(CARD).state == "active"


@pytest.mark.parametrize("state", ["lost", "replacement_requested", "in_production", "replacement_ready",
                                   "cancelled"])
def test_only_a_card_pending_activation_can_be_activated(state: str) -> None:
    with pytest.raises(Conflict, match=f"is {state}"):
        domain.activate(person_id=PID, card_number=CARD)(holder_in(state))


# Loss reports

@pytest.mark.parametrize("state", ["pending_activation", "active"])
def test_a_card_in_use_is_blocked_by_a_loss_report(state: str) -> None:
    holder, events = apply(holder_in(state), lose())
    card = holder.card(CARD)
    assert card.state == "lost" and card.loss is not None and card.loss.voucher == "V1"
    assert events == [CardLost(person_id=PID, card_number=CARD, channel="online", voucher="V1", business_date=TODAY,
                               letter_reference=None)]


@pytest.mark.parametrize("state", ["lost", "replacement_requested", "in_production", "replacement_ready"])
def test_a_card_already_reported_lost_keeps_its_voucher_and_publishes_nothing(state: str) -> None:
    before = holder_in(state)
    decision = lose(voucher="V-other")(before)
    assert decision.events == [] and decision.state == before
    assert decision.result.loss.voucher in ("V1", "VB")


def test_the_banks_block_is_recorded_once_and_the_loss_answer_tells_it() -> None:
    lost, _ = apply(holder_in("lost"), domain.confirm_block(person_id=PID, card_number=CARD, blocked_at=NOW))
    assert lost.card(CARD).bank_blocked_at == NOW and lost.card(CARD).state == "lost"
    again = domain.confirm_block(person_id=PID, card_number=CARD, blocked_at=datetime(2026, 1, 6, tzinfo=UTC))(lost)
    assert again.state is None and again.events == [] and again.result.bank_blocked_at == NOW
    answer = loss_public(lost.card(CARD))
    assert (answer.blocked, answer.block, answer.card_state) == (True, "confirmed", "lost")


def test_a_loss_the_bank_has_not_confirmed_is_answered_as_pending() -> None:
    answer = loss_public(holder_in("lost").card(CARD))
    assert (answer.blocked, answer.block, answer.card_state) == (False, "pending", "lost")


def test_a_broken_card_awaiting_replacement_can_still_be_reported_lost() -> None:
    holder, _ = apply(holder_in("active"), replace(broken=True))
    holder, events = apply(holder, lose())
    assert types(events) == [CardLost]
    assert holder.card(CARD).state == "replacement_requested"


def test_a_cancelled_card_cannot_be_reported_lost() -> None:
    holder = holder_in("cancelled")
    with pytest.raises(Conflict, match="cancelled"):
        lose(card_number=CARD)(holder)


@pytest.mark.parametrize("wrong", [
    Presented(id_number_digest="e" * 64, name="Wang Fang", mobile="13800138000"),
    Presented(id_number_digest=DIGEST, name="Wang Fan", mobile="13800138000"),
    Presented(id_number_digest=DIGEST, name="Wang Fang", mobile="13900139000"),
])
def test_a_loss_report_whose_details_do_not_match_is_refused_without_saying_which(wrong: Presented) -> None:
    with pytest.raises(Forbidden) as err:
        lose(presented=wrong)(holder_in("active"))
    assert err.value.message == NO_MATCH


def test_an_online_report_blocks_the_current_card_not_a_cancelled_one() -> None:
    _, events = apply(holder_in("cancelled"), lose(voucher="V2"))
    assert [e.card_number for e in events] == [NEW_CARD]  # type: ignore[attr-defined]


# Replacement application

def test_a_lost_card_is_replaced_on_application() -> None:
    holder, events = apply(holder_in("lost"), replace())
    assert holder.card(CARD).state == "replacement_requested"
    assert events == [ReplacementRequested(person_id=PID, card_number=CARD, receipt_number="R1",
                                           documents=["resident ID card", "household registration book"],
                                           business_date=TODAY)]


def test_an_active_card_is_replaced_when_brought_in_broken() -> None:
    holder, events = apply(holder_in("active"), replace(broken=True))
    assert holder.card(CARD).loss is None
    assert events[0].documents[-1] == "broken card"  # type: ignore[attr-defined]


def test_an_active_card_not_brought_in_must_be_reported_lost_first() -> None:
    with pytest.raises(Conflict, match="report it lost first"):
        replace()(holder_in("active"))


@pytest.mark.parametrize("state", ["pending_activation", "replacement_requested", "in_production",
                                   "replacement_ready", "cancelled"])
def test_a_replacement_is_refused_in_any_other_state(state: str) -> None:
    with pytest.raises(Conflict):
        replace(broken=True)(holder_in(state))


def test_a_replacement_needs_the_holders_id_card() -> None:
    decide = domain.request_replacement(person_id=PID, card_number=CARD, presented=Presented("e" * 64),
                                        receipt_number="R1", broken_card=False, today=TODAY)
    with pytest.raises(Forbidden):
        decide(holder_in("lost"))


# Bank stamp, production, ready

def test_the_bank_stamp_starts_production_with_the_ready_date_15_working_days_later() -> None:
    holder, events = apply(holder_in("replacement_requested"), stamp())
    card = holder.card(CARD)
    assert card.state == "in_production" and card.replacement and card.replacement.ready_on == date(2026, 1, 26)
    assert events == [ReplacementProductionStarted(person_id=PID, card_number=CARD, receipt_number="R1",
                                                   stamped_on=TODAY, ready_on=date(2026, 1, 26))]


def test_the_bank_stamp_reports_the_loss_of_a_card_not_yet_reported() -> None:
    holder, _ = apply(holder_in("active"), replace(broken=True))
    holder, events = apply(holder, stamp())
    assert types(events) == [CardLost, ReplacementProductionStarted]
    assert events[0].channel == "bank"  # type: ignore[attr-defined]
    assert holder.card(CARD).loss is not None


def test_a_stamp_that_arrives_after_the_ready_date_makes_the_card_ready_at_once() -> None:
    holder, events = apply(holder_in("replacement_requested"), stamp(today=date(2026, 3, 1)))
    assert types(events) == [ReplacementProductionStarted, ReplacementReady]
    assert holder.card(CARD).state == "replacement_ready"


@pytest.mark.parametrize("state", ["in_production", "replacement_ready", "cancelled"])
def test_a_replacement_is_stamped_only_once(state: str) -> None:
    with pytest.raises(Conflict):
        stamp()(holder_in(state))


@pytest.mark.parametrize("state", ["pending_activation", "active", "lost"])
def test_a_stamp_for_an_unknown_receipt_is_refused(state: str) -> None:
    with pytest.raises(NotFound, match="R1"):
        stamp()(holder_in(state))


def test_a_replacement_is_not_ready_the_day_before_its_ready_date_and_is_on_it() -> None:
    holder = holder_in("in_production")
    decision = domain.mark_ready(person_id=PID, today=date(2026, 1, 25))(holder)
    assert decision.events == []
    holder, events = apply(holder, domain.mark_ready(person_id=PID, today=date(2026, 1, 26)))
    assert holder.card(CARD).state == "replacement_ready"
    [ready] = events
    assert isinstance(ready, ReplacementReady)
    assert ready.pickup_location == domain.PICKUP_LOCATION and "resident ID card" in ready.documents_required


# Collection

def test_collecting_cancels_the_old_card_and_issues_a_new_one_awaiting_its_password_that_replaces_it() -> None:
    holder, events = apply(holder_in("replacement_ready"), collect())
    old, new = holder.card(CARD), holder.card(NEW_CARD)
    assert (old.state, old.replaced_by) == ("cancelled", NEW_CARD)
    assert (new.state, new.replaces) == ("pending_activation", CARD)
    assert events == [
        CardCancelled(person_id=PID, card_number=CARD, reason="replaced", replaced_by=NEW_CARD),
        CardIssued(person_id=PID, card_number=NEW_CARD, agent_bank="BOC", replaces=CARD),
    ]


@pytest.mark.parametrize("state", ["replacement_requested", "in_production"])
def test_a_card_that_is_not_ready_cannot_be_collected(state: str) -> None:
    with pytest.raises(Conflict, match="not ready"):
        collect()(holder_in(state))


def test_a_second_collection_says_the_card_was_already_collected() -> None:
    with pytest.raises(Conflict) as err:
        collect()(holder_in("cancelled"))
    assert err.value.message == (f"replacement R1 was already collected: the new card {NEW_CARD} "
                                 "was handed out on 2026-02-01")


def test_collecting_needs_the_holders_id_card() -> None:
    with pytest.raises(Forbidden):
        collect(Presented("e" * 64))(holder_in("replacement_ready"))


# The shared vocabulary (shared.card_state): what every service's card view says

@pytest.mark.parametrize(("stage", "shared", "replacement"), [
    ("pending_activation", "pending_activation", None),
    ("active", "active", None),
    ("lost", "lost", None),
    ("replacement_requested", "lost", "requested"),
    ("in_production", "lost", "in_production"),
    ("replacement_ready", "lost", "ready"),
    ("cancelled", "cancelled", "collected"),
])
def test_every_step_of_the_lifecycle_is_told_in_the_shared_vocabulary(stage: str, shared: str,
                                                                      replacement: str | None) -> None:
    card = holder_in(stage).card(CARD)
    assert (card.shared_state, card.replacement_status) == (shared, replacement)


def test_a_broken_card_awaiting_its_replacement_is_active_until_the_stamp_reports_it_lost() -> None:
    holder, _ = apply(holder_in("active"), replace(broken=True))
    assert (holder.card(CARD).shared_state, holder.card(CARD).replacement_status) == ("active", "requested")
    holder, _ = apply(holder, stamp())
    assert holder.card(CARD).shared_state == "lost"


def test_a_new_card_is_pending_activation_until_its_password_is_set() -> None:
    holder, _ = apply(holder_in("replacement_ready"), collect())
    assert holder.card(NEW_CARD).shared_state == "pending_activation"
    holder, _ = apply(holder, domain.activate(person_id=PID, card_number=NEW_CARD))
    assert holder.card(NEW_CARD).shared_state == "active"
