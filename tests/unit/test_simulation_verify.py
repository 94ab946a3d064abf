"""The simulation's projection check: which stories of one card agree across services."""

from __future__ import annotations

import pytest

from medcard.simulate.verify import cards_agree

LOSS = {"voucher": "V1", "channel": "online"}


def card(state: str, loss: dict[str, str] | None = None) -> dict[str, object]:
    return {"card_number": "6216610000000000018", "state": state, "loss": loss}


@pytest.mark.parametrize(("held", "bank", "note"), [
    (card("pending_activation"), "active", "active"),
    (card("active"), "active", "active"),
    (card("lost", LOSS), "lost", "lost"),
    (card("replacement_requested", LOSS), "lost", "replacement_requested"),
    # A broken card brought in: applied for, not stamped yet, so never reported lost.
    (card("replacement_requested"), "active", "active"),
    (card("in_production", LOSS), "lost", "in_production"),
    (card("cancelled", LOSS), "cancelled", "cancelled"),
    (card("cancelled", LOSS), "lost", "cancelled"),
])
def test_agreeing_stories(held: dict[str, object], bank: str, note: str) -> None:
    assert cards_agree(held, bank, note)


@pytest.mark.parametrize(("held", "bank", "note"), [
    (card("active"), None, "active"),                       # the bank never heard of the card
    (card("active"), "active", None),                       # nor did notifications
    (card("active"), "lost", "active"),                     # blocked at the bank, usable at cards
    (card("lost", LOSS), "active", "lost"),                 # the loss never reached the bank
    (card("replacement_requested"), "lost", "active"),      # blocked although never reported
    (card("cancelled", LOSS), "active", "cancelled"),       # cancelled yet usable at the bank
    (card("cancelled", LOSS), "cancelled", "active"),       # notifications missed the cancel
    (card("active"), "active", "cancelled"),
])
def test_disagreeing_stories(held: dict[str, object], bank: str | None, note: str | None) -> None:
    assert not cards_agree(held, bank, note)
