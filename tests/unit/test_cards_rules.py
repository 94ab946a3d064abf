"""The cards service's rules, one named guard each: what it refuses (with its own error,
still a Conflict with the answer's message and code) and what it admits."""

from __future__ import annotations

from datetime import date

import pytest

from services.cards import domain
from services.cards.model import Card, Cardholder, Replacement, Stage
from shared.domain import Conflict

PID, CARD, NEW_CARD = "P1", "6216610000000000018", "6216610000000000026"
TODAY = date(2026, 1, 5)


def card(state: Stage, *, receipt: str | None = None, new_card_number: str | None = None,
         ready_on: date | None = None, number: str = CARD) -> Card:
    replacement = None if receipt is None else Replacement(
        receipt_number=receipt, documents=domain.APPLICATION_DOCUMENTS, requested_on=TODAY, ready_on=ready_on,
        new_card_number=new_card_number)
    return Card(card_number=number, agent_bank="BOC", state=state, issued_on=TODAY, replacement=replacement)


def holder(*cards: Card) -> Cardholder:
    return Cardholder(person_id=PID, name="Wang Fang", id_number_digest="d" * 64, mobile="13800138000",
                      cards=list(cards))


def test_the_error_of_each_rule_is_a_conflict_with_its_code() -> None:
    for error in (domain.ReplacementUnderWay, domain.LostCardIsReplaced, domain.AlreadyHasCard,
                  domain.NotPendingActivation, domain.NothingToBlock, domain.ActiveCardNotBroken,
                  domain.NotReplaceable, domain.ReplacementNotRequested, domain.AlreadyCollected,
                  domain.NotReadyToCollect):
        assert issubclass(error, Conflict)
        assert error("why").code == "conflict"


def test_one_active_card_per_person() -> None:
    domain.check_one_active_card(holder())
    domain.check_one_active_card(holder(card("cancelled")))
    with pytest.raises(domain.AlreadyHasCard, match=f"person {PID} already has card {CARD} \\(active\\): at most "
                                                    "one active card per person"):
        domain.check_one_active_card(holder(card("cancelled", number=NEW_CARD), card("active")))
    with pytest.raises(domain.AlreadyHasCard, match="pending_activation"):
        domain.check_card_is_cancelled(PID, card("pending_activation"))
    domain.check_card_is_cancelled(PID, card("cancelled"))


def test_a_lost_card_is_followed_by_its_replacement() -> None:
    with pytest.raises(domain.LostCardIsReplaced,
                       match=f"card {CARD} was reported lost: a new card comes through a replacement"):
        domain.check_one_active_card(holder(card("lost")))
    domain.check_lost_card_is_replaced(card("cancelled"))


def test_no_new_card_while_one_is_being_replaced() -> None:
    for state in ("replacement_requested", "in_production", "replacement_ready"):
        with pytest.raises(domain.ReplacementUnderWay, match=f"a replacement of card {CARD} is under way "
                                                             "\\(receipt R1\\)"):
            domain.check_one_active_card(holder(card(state, receipt="R1")))  # type: ignore[arg-type]
    domain.check_not_being_replaced(card("cancelled", receipt="R1"))
    domain.check_not_being_replaced(card("active"))


def test_only_a_card_pending_activation_is_activated() -> None:
    domain.check_pending_activation(card("pending_activation"))
    with pytest.raises(domain.NotPendingActivation,
                       match=f"card {CARD} is lost: only a card pending activation can be activated"):
        domain.check_pending_activation(card("lost"))


def test_a_cancelled_card_has_nothing_to_block() -> None:
    for state in ("pending_activation", "active", "lost", "in_production"):
        domain.check_not_cancelled(card(state))  # type: ignore[arg-type]
    with pytest.raises(domain.NothingToBlock, match=f"card {CARD} is cancelled: there is nothing to block"):
        domain.check_not_cancelled(card("cancelled"))


def test_one_replacement_at_a_time() -> None:
    domain.check_no_replacement_under_way(card("lost"))
    with pytest.raises(domain.ReplacementUnderWay, match=f"a replacement of card {CARD} is already under way "
                                                         "\\(receipt R1\\)"):
        domain.check_no_replacement_under_way(card("in_production", receipt="R1"))


def test_an_active_card_is_replaced_only_when_brought_in_broken() -> None:
    domain.check_broken_if_active(card("active"), True)
    domain.check_broken_if_active(card("lost"), False)
    with pytest.raises(domain.ActiveCardNotBroken,
                       match=f"card {CARD} is active: report it lost first, or present the broken card"):
        domain.check_broken_if_active(card("active"), False)


def test_only_a_lost_or_active_card_is_replaced() -> None:
    domain.check_lost_or_active(card("lost"))
    domain.check_lost_or_active(card("active"))
    with pytest.raises(domain.NotReplaceable, match=f"card {CARD} is pending_activation: only a lost card or a "
                                                    "broken one can be replaced"):
        domain.check_lost_or_active(card("pending_activation"))


def test_the_bank_stamps_only_a_requested_replacement() -> None:
    requested = card("replacement_requested", receipt="R1")
    assert domain.check_replacement_requested(requested, "R1") == requested.replacement
    with pytest.raises(domain.ReplacementNotRequested,
                       match="replacement R1 is in_production: only a requested replacement is stamped"):
        domain.check_replacement_requested(card("in_production", receipt="R1"), "R1")


def test_a_replacement_card_is_handed_out_once() -> None:
    ready = card("replacement_ready", receipt="R1")
    domain.check_not_collected(holder(ready), ready, "R1")
    handed = card("cancelled", receipt="R1", new_card_number=NEW_CARD)
    new = card("pending_activation", number=NEW_CARD).model_copy(update={"issued_on": date(2026, 2, 1)})
    with pytest.raises(domain.AlreadyCollected, match=f"replacement R1 was already collected: the new card "
                                                      f"{NEW_CARD} was handed out on 2026-02-01"):
        domain.check_not_collected(holder(handed, new), handed, "R1")


def test_a_replacement_card_is_handed_out_once_it_is_ready() -> None:
    ready = card("replacement_ready", receipt="R1")
    assert domain.check_ready_to_collect(ready, "R1") == ready.replacement
    with pytest.raises(domain.NotReadyToCollect, match="replacement R1 is not ready to collect: the card is "
                                                       "in_production, ready on 2026-01-26"):
        domain.check_ready_to_collect(card("in_production", receipt="R1", ready_on=date(2026, 1, 26)), "R1")
