"""The simulation's projection check: the states of one card told by cards, the bank and
notifications must be equal, word for word (the shared vocabulary, shared.card_state)."""

from __future__ import annotations

import pytest

from medcard.simulate.verify import cards_agree, states_by_card
from shared.card_state import CARD_STATES


@pytest.mark.parametrize("state", CARD_STATES)
def test_the_same_state_everywhere_agrees(state: str) -> None:
    assert cards_agree(state, state, state)


@pytest.mark.parametrize(("held", "bank", "note"), [
    ("active", None, "active"),                        # the bank never heard of the card
    ("active", "active", None),                        # nor did notifications
    ("active", "lost", "active"),                      # blocked at the bank, usable at cards
    ("lost", "active", "lost"),                        # the loss never reached the bank
    ("cancelled", "active", "cancelled"),              # cancelled yet usable at the bank
    ("cancelled", "cancelled", "active"),              # notifications missed the cancel
    ("active", "active", "cancelled"),
    # Forgiven before issue 17, told apart now:
    ("cancelled", "lost", "cancelled"),                # the bank kept a replaced card lost
    ("lost", "lost", "active"),                        # notifications never heard of the loss
    ("pending_activation", "active", "active"),        # a card awaiting its password shown active
    ("pending_activation", "pending_activation", "active"),
])
def test_any_difference_is_a_disagreement(held: str, bank: str | None, note: str | None) -> None:
    assert not cards_agree(held, bank, note)


def test_card_views_are_read_by_card_number_and_state() -> None:
    views = [{"card_number": "6216610000000000018", "state": "cancelled", "blocked_at": None},
             {"card_number": "6216610000000000026", "state": "pending_activation"}]
    assert states_by_card(views) == {"6216610000000000018": "cancelled", "6216610000000000026": "pending_activation"}
