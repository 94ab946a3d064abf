"""``medcard card``'s comparison of the state each service holds of a card: exact, in the
vocabulary the services share (before issue 17 it forgave a card awaiting its password
shown active, and a replaced card the bank kept lost)."""

from __future__ import annotations

from medcard.ops.state import ServiceState, disagreements


def told(**states: str | None) -> list[ServiceState]:
    return [ServiceState(service="identity", status="ok")] + [
        ServiceState(service=name, status="ok" if state else "not found", card_state=state)
        for name, state in states.items()]


def test_the_same_state_everywhere_is_no_disagreement() -> None:
    assert disagreements(told(cards="cancelled", bank="cancelled", notifications="cancelled")) == []


def test_a_replaced_card_the_bank_keeps_lost_is_a_disagreement() -> None:
    assert disagreements(told(cards="cancelled", bank="lost", notifications="cancelled")) == [
        "cards says cancelled, bank says lost, notifications says cancelled"]


def test_a_card_awaiting_its_password_told_active_is_a_disagreement() -> None:
    assert disagreements(told(cards="pending_activation", bank="pending_activation", notifications="active")) == [
        "cards says pending_activation, bank says pending_activation, notifications says active"]


def test_a_service_that_does_not_know_the_card_is_named() -> None:
    assert disagreements(told(cards="lost", bank="lost", notifications=None)) == [
        "notifications does not know the card, cards says lost"]
