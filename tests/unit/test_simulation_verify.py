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


def event(name: str, seq: int, data: dict[str, object], person: str = "P1",
          time: str = "2026-04-01T08:00:00Z") -> tuple[dict[str, str], dict[str, object]]:
    return ({"type": f"medcard.x.{name}.v1", "sequence": str(seq), "partitionkey": person, "time": time}, data)


def test_the_tally_counts_checks_and_takes_published_ids_out_of_the_ledger() -> None:
    from medcard.simulate.verify import Tally, count, loss_window, no_purchase_after_loss, nothing_lost

    tally = Tally(ledger={"vouchers": {"V1"}, "authorisations": {"A1", "A2", "A9"}})
    tally.add("cards", *event("CardLost", 1, {"card_number": "C1", "channel": "online", "voucher": "V1"},
                              time="2026-04-01T08:00:00Z"))
    bank = [
        event("MonthlyTransfer", 1, {"person_id": "P1", "amount_fen": 5000}),
        event("PurchaseAuthorised", 2, {"person_id": "P1", "card_number": "C1", "amount_fen": 700,
                                        "authorisation_id": "A1"}, time="2026-04-01T08:00:00.100Z"),
        event("CardBlocked", 3, {"card_number": "C1", "reason": "lost"}, time="2026-04-01T08:00:00.250Z"),
        event("PurchaseDeclined", 4, {"card_number": "C1", "reason_code": "41", "authorisation_id": "A2"}),
        event("PurchaseAuthorised", 2, {"person_id": "P1", "card_number": "C1", "amount_fen": 700,
                                        "authorisation_id": "A1"}),  # its copy, after the block: not checked again
    ]
    for attrs, data in bank:
        tally.add("bank", attrs, data)
    figures = count(tally)
    assert figures["purchases"] == {"authorised": 2, "declined": {"41": 1}}
    assert figures["monthly_transfers"] == {"count": 1, "total_fen": 5000} and figures["losses"] == {"online": 1}
    assert no_purchase_after_loss(tally)
    window = loss_window(tally)
    assert (window["reports"], window["applied_by_bank"], window["purchases_inside_window"]) == (1, 1, 2)
    assert window["latency_ms_p50"] == 250.0
    assert nothing_lost(tally, 0) == {"persons": True, "cards": True, "vouchers": True, "receipts": True,
                                      "stamps": True, "authorisations": False, "contributions": True,
                                      "outboxes_empty": True}  # A9 was never published

    tally.add("bank", *event("PurchaseAuthorised", 5, {"person_id": "P1", "card_number": "C1", "amount_fen": 1,
                                                      "authorisation_id": "A3"}))
    assert not no_purchase_after_loss(tally)


def test_a_copy_published_again_is_recognised_by_its_id_among_the_recent_ones() -> None:
    from medcard.simulate import verify

    recent = verify._Recent()
    assert [recent.again(i) for i in ("e1", "e2", "e1", None, None)] == [False, False, True, False, False]
    for i in range(verify.RECENT_IDS):
        recent.again(f"x{i}")
    assert not recent.again("e1")  # long forgotten
