"""Account rules: opening, replacement, loss, contributions and the monthly transfer,
card passwords, stamps and statements."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.bank import domain
from services.bank.model import Account, Contribution, LedgerEntry
from services.bank.statement import build_statement, default_start, statement_csv
from shared.domain import Conflict, Forbidden, Invalid, Locked, NotFound
from shared.events import (
    AccountMovedToCard,
    AccountOpened,
    BankStamped,
    CardBlocked,
    CardPasswordReset,
    ContributionHeld,
    MonthlyTransfer,
)

OLD, NEW = "6216610000000000017", "6216610000000000025"
AT = datetime(2026, 2, 1, tzinfo=UTC)


def apply(state: Account | None, *decides: domain.Decide) -> Account:
    for decide in decides:
        decision = decide(state)
        state = decision.state or state
    assert state is not None
    return state


def opened(balance: int = 0) -> Account:
    state = apply(None, domain.issue_card("P1", OLD, None, AT))
    state.balance_fen = balance
    return state


def test_the_first_card_opens_the_personal_account() -> None:
    decision = domain.issue_card("P1", OLD, None, AT)(None)
    assert decision.state is not None and decision.state.account_id == "PMA-P1"
    assert decision.state.current_card == OLD
    assert decision.events == [AccountOpened(person_id="P1", account_id="PMA-P1", card_number=OLD)]


def test_a_replacement_takes_the_balance_and_the_old_card_stops_working() -> None:
    state = opened(balance=5_000)
    state.pin_hash = "H"
    decision = domain.issue_card("P1", NEW, OLD, AT)(state)
    assert decision.state is not None
    assert decision.state.current_card == NEW and decision.state.balance_fen == 5_000
    assert decision.state.card(OLD).status == "cancelled"
    assert decision.state.pin_hash is None  # the new card needs its own password
    assert decision.events == [
        CardBlocked(person_id="P1", card_number=OLD, reason="cancelled", blocked_at=AT),
        AccountMovedToCard(person_id="P1", account_id="PMA-P1", old_card_number=OLD, new_card_number=NEW,
                           balance_fen=5_000),
    ]


def test_applying_a_loss_publishes_card_blocked_once() -> None:
    first = domain.block_card("P1", OLD, "lost", AT)(opened())
    assert first.events == [CardBlocked(person_id="P1", card_number=OLD, reason="lost", blocked_at=AT)]
    assert first.state is not None
    assert domain.block_card("P1", OLD, "lost", AT)(first.state).events == []


def test_a_loss_kept_for_the_night_leaves_the_card_working_until_the_day_ends() -> None:
    night = datetime(2026, 2, 1, 16, tzinfo=UTC)
    kept = domain.note_loss("P1", OLD, AT)(opened())
    assert kept.events == [] and kept.state is not None
    assert kept.state.card(OLD).status == "active" and kept.state.losses_pending
    again = domain.note_loss("P1", OLD, night)(kept.state)  # a repeat keeps the first report's time
    assert again.state is not None and again.state.card(OLD).loss_pending_since == AT
    applied = domain.apply_pending_losses(night)(again.state)
    assert applied.events == [CardBlocked(person_id="P1", card_number=OLD, reason="lost", blocked_at=night)]
    assert applied.state is not None and applied.state.card(OLD).status == "lost"
    assert not applied.state.losses_pending
    assert domain.apply_pending_losses(night)(applied.state).events == []  # nothing kept any more
    blocked = domain.block_card("P1", OLD, "lost", AT)(opened())
    assert blocked.state is not None
    assert domain.note_loss("P1", OLD, night)(blocked.state).state.losses_pending is False  # type: ignore[union-attr]


def test_a_lost_card_is_cancelled_when_its_replacement_is_collected_and_its_loss_is_remembered() -> None:
    # Issue 17: the bank used to keep a replaced lost card "lost" while cards and
    # notifications said "cancelled".
    later = datetime(2026, 3, 1, tzinfo=UTC)
    state = apply(opened(), domain.block_card("P1", OLD, "lost", AT), domain.block_card("P1", OLD, "cancelled", later),
                  domain.issue_card("P1", NEW, OLD, later))
    assert state.card(OLD).status == "cancelled" and state.card(NEW).status == "active"
    assert state.card(OLD).reported_lost  # a swipe on it is still "41" with a fraud alert
    assert state.card(OLD).blocked_at == AT  # when the loss took effect at the bank
    assert (state.shared_state(state.card(OLD)), state.shared_state(state.card(NEW))) == (
        "cancelled", "pending_activation")


def test_a_card_moves_only_forward_a_cancelled_card_is_never_lost_again() -> None:
    state = apply(opened(), domain.block_card("P1", OLD, "cancelled", AT), domain.block_card("P1", OLD, "lost", AT))
    assert state.card(OLD).status == "cancelled"


@pytest.mark.parametrize(("pin_hash", "blocked", "shared"), [
    (None, None, "pending_activation"), ("H", None, "active"), ("H", "lost", "lost"), (None, "lost", "lost"),
    ("H", "cancelled", "cancelled"),
])
def test_the_bank_tells_a_cards_state_in_the_shared_vocabulary(pin_hash: str | None, blocked: str | None,
                                                                shared: str) -> None:
    state = opened()
    state.pin_hash = pin_hash
    if blocked:
        state = apply(state, domain.block_card("P1", OLD, blocked, AT))  # type: ignore[arg-type]
    assert state.shared_state(state.card(OLD)) == shared


def test_a_card_stored_lost_before_the_loss_flag_existed_is_read_as_reported_lost() -> None:
    state = Account.model_validate({"person_id": "P1", "cards": [{"number": OLD, "status": "lost"}]})
    assert state.card(OLD).reported_lost


def test_a_card_issued_twice_changes_nothing() -> None:
    assert domain.issue_card("P1", OLD, None, AT)(opened()).state is None


def test_a_contribution_without_an_account_is_held_and_credited_after_the_account_opens() -> None:
    decision = domain.record_contribution("P1", "C1", "2026-01", 1_200)(None)
    assert decision.state is not None and decision.state.held
    assert isinstance(decision.events[0], ContributionHeld)
    state = apply(decision.state, domain.issue_card("P1", OLD, None, AT))
    assert not state.held and state.credit_due_from == "2026-01"
    credited = apply(state, domain.credit_month_end("2026-02", date(2026, 2, 28), AT))
    assert credited.balance_fen == 1_200 and credited.credit_due_from is None


def test_a_duplicated_contribution_is_recorded_once() -> None:
    state = apply(opened(), domain.record_contribution("P1", "C1", "2026-01", 1_200))
    assert domain.record_contribution("P1", "C1", "2026-01", 1_200)(state).state is None
    assert len(state.contributions) == 1


def test_the_transfer_credits_due_months_oldest_first_and_leaves_later_ones() -> None:
    contributions = [Contribution(contribution_id="C3", month="2026-03", amount_fen=300),
                     Contribution(contribution_id="C1", month="2026-01", amount_fen=100),
                     Contribution(contribution_id="C2", month="2026-02", amount_fen=200),
                     Contribution(contribution_id="C0", month="2025-12", amount_fen=50, credited=True)]
    assert [c.contribution_id for c in domain.due_contributions(contributions, "2026-02")] == ["C1", "C2"]


def test_a_month_end_credits_each_contribution_once_with_one_transfer_each() -> None:
    state = apply(opened(), domain.record_contribution("P1", "C1", "2026-01", 1_000),
                  domain.record_contribution("P1", "C2", "2026-01", 500),
                  domain.record_contribution("P1", "C3", "2026-02", 700))
    decision = domain.credit_month_end("2026-01", date(2026, 1, 31), AT)(state)
    assert decision.state is not None and decision.state.balance_fen == 1_500
    assert [(e.contribution_id, e.balance_after_fen) for e in decision.events
            if isinstance(e, MonthlyTransfer)] == [("C1", 1_000), ("C2", 1_500)]
    again = domain.credit_month_end("2026-01", date(2026, 1, 31), AT)(decision.state)
    assert again.state is None and again.events == []
    assert decision.state.credit_due_from == "2026-02"
    # The credited ones leave the account (their credit postings stay in the ledger): an
    # account no longer grows by a contribution a month.
    assert [c.contribution_id for c in decision.state.contributions] == ["C3"]
    assert [e.reference for e in decision.state.ledger if e.kind == "credit"] == ["C1", "C2"]


def test_no_transfer_without_an_account() -> None:
    held = apply(None, domain.record_contribution("P1", "C1", "2026-01", 1_000))
    assert domain.credit_month_end("2026-01", date(2026, 1, 31), AT)(held).events == []


def test_a_password_is_set_once_then_changed_with_the_old_one() -> None:
    state = apply(opened(), domain.set_pin(OLD, "H1", "counter"))
    assert state.pin_hash == "H1"
    with pytest.raises(Conflict, match="already set"):
        domain.set_pin(OLD, "H2", "online")(state)
    changed = apply(state, domain.change_pin(OLD, "H1", "H2", "phone"))
    assert changed.pin_hash == "H2"
    with pytest.raises(Conflict, match="changed meanwhile"):
        domain.change_pin(OLD, "H1", "H3", "phone")(changed)


def test_a_locked_password_cannot_be_changed_only_reset_by_a_teller_on_the_id_card() -> None:
    state = opened()
    state.pin_hash, state.pin_locked, state.pin_failures, state.id_number_digest = "H1", True, 3, "D"
    with pytest.raises(Locked):
        domain.change_pin(OLD, "H1", "H2", "phone")(state)
    with pytest.raises(Forbidden, match="does not match"):
        domain.reset_pin(OLD, "OTHER", "H2")(state)
    decision = domain.reset_pin(OLD, "D", "H2")(state)
    assert decision.state is not None and not decision.state.pin_locked and decision.state.pin_failures == 0
    assert decision.state.pin_hash == "H2" and isinstance(decision.events[0], CardPasswordReset)


def test_a_reset_before_the_register_entry_arrived_is_refused() -> None:
    with pytest.raises(Conflict, match="register"):
        domain.reset_pin(OLD, "D", "H2")(opened())


def test_a_password_never_set_is_set_not_reset() -> None:
    state = opened()
    state.id_number_digest = "D"
    with pytest.raises(Conflict, match="never set"):
        domain.reset_pin(OLD, "D", "H2")(state)


def test_the_password_of_a_lost_card_cannot_be_managed() -> None:
    with pytest.raises(Conflict, match="lost"):
        domain.set_pin(OLD, "H1", "counter")(apply(opened(), domain.block_card("P1", OLD, "lost", AT)))


def test_a_stamp_reports_the_loss_when_the_card_was_still_active_and_only_once() -> None:
    state = apply(opened(), domain.remember_receipt("P1", OLD, "R1", date(2026, 1, 5)))
    decision = domain.stamp_receipt("R1", "Xidan", "SEAL-1", AT, date(2026, 2, 1))(state)
    assert decision.state is not None and decision.state.card(OLD).status == "lost"
    assert isinstance(decision.result, BankStamped) and decision.result.loss_reported
    with pytest.raises(Conflict, match="already stamped"):
        domain.stamp_receipt("R1", "Xidan", "SEAL-1", AT, date(2026, 2, 1))(decision.state)
    with pytest.raises(NotFound):
        domain.stamp_receipt("R9", "Xidan", "SEAL-1", AT, date(2026, 2, 1))(state)


def test_a_stamp_on_a_card_already_lost_does_not_report_it_again() -> None:
    state = apply(opened(), domain.block_card("P1", OLD, "lost", AT),
                  domain.remember_receipt("P1", OLD, "R1", date(2026, 1, 5)))
    assert not domain.stamp_receipt("R1", "Xidan", "S", AT, date(2026, 2, 1))(state).result.loss_reported


def test_a_designated_shop_cannot_be_registered() -> None:
    with pytest.raises(Invalid):
        domain.register_merchant("M1", "Shop", "shop", True)(None)


def test_a_statement_has_opening_and_closing_balances_and_a_running_balance() -> None:
    state = apply(opened(), domain.record_contribution("P1", "C1", "2025-12", 1_000),
                  domain.credit_month_end("2025-12", date(2025, 12, 31), AT),
                  domain.record_contribution("P1", "C2", "2026-01", 2_000),
                  domain.credit_month_end("2026-01", date(2026, 1, 31), AT))
    statement = build_statement(state, date(2026, 1, 1), date(2026, 1, 31))
    assert (statement.opening_balance_fen, statement.credits_fen, statement.closing_balance_fen) == (
        1_000, 2_000, 3_000)
    assert [line.balance_fen for line in statement.lines] == [3_000]
    rows = statement_csv(statement).splitlines()
    assert rows[0].startswith("business_date,recorded_at,type")
    assert rows[1].split(",")[2] == "opening" and rows[-1].split(",")[-1] == "3000"
    with pytest.raises(Invalid):
        build_statement(state, date(2026, 2, 1), date(2026, 1, 1))


@pytest.mark.parametrize(("end", "start"), [
    (date(2027, 1, 15), date(2026, 1, 16)),   # asked in January: December is in it (issue 17)
    (date(2026, 12, 31), date(2026, 1, 1)),
    (date(2028, 2, 29), date(2027, 3, 1)),
])
def test_a_statement_covers_the_last_12_months_by_default(end: date, start: date) -> None:
    assert default_start(end) == start


def three_months() -> Account:
    """Transfers at the ends of November, December and January, and a purchase in January."""
    state = opened()
    for cid, month, closing, amount in (("C1", "2025-11", date(2025, 11, 30), 1_000),
                                        ("C2", "2025-12", date(2025, 12, 31), 2_000)):
        state = apply(state, domain.record_contribution("P1", cid, month, amount),
                      domain.credit_month_end(month, closing, AT))
    state.balance_fen -= 500
    state.ledger.append(LedgerEntry(reference="AU1", kind="debit", amount_fen=500, business_date=date(2026, 1, 9),
                                    recorded_at=AT, card_number=OLD, description="Purchase"))
    return apply(state, domain.record_contribution("P1", "C3", "2026-01", 4_000))


def test_a_month_end_moves_the_postings_archived_before_its_month_out_of_the_account() -> None:
    state = three_months()
    ends = domain.credit_month_end("2026-01", date(2026, 1, 31), AT, archived={"C1", "C2", "AU1"})
    decision = ends(state)
    assert decision.state is not None
    acc = decision.state
    assert [e.reference for e in acc.ledger] == ["AU1", "C3"]  # January's stay: the purchase and the transfer
    assert (acc.archived_credits_fen, acc.archived_debits_fen, acc.archived_before) == (3_000, 0, date(2026, 1, 1))
    assert acc.balance_fen == 6_500 == acc.archived_credits_fen + sum(
        e.amount_fen if e.kind == "credit" else -e.amount_fen for e in acc.ledger)
    assert [e.reference for e in state.ledger] == ["C1", "C2", "AU1"]  # the account given is left as it was


def test_a_posting_not_known_to_be_archived_stays_in_the_account() -> None:
    acc = domain.credit_month_end("2026-01", date(2026, 1, 31), AT, archived={"C2"})(three_months()).state
    assert acc is not None
    assert [e.reference for e in acc.ledger] == ["C1", "AU1", "C3"]
    assert (acc.archived_credits_fen, acc.archived_before) == (2_000, date(2026, 1, 1))
    nothing = domain.credit_month_end("2026-01", date(2026, 1, 31), AT)(three_months()).state
    assert nothing is not None and len(nothing.ledger) == 4 and nothing.archived_before is None


def test_a_statement_reads_the_archive_only_when_its_period_reaches_back_to_it() -> None:
    full = domain.credit_month_end("2026-01", date(2026, 1, 31), AT)(three_months()).state
    acc = domain.credit_month_end("2026-01", date(2026, 1, 31), AT, archived={"C1", "C2"})(three_months()).state
    assert full is not None and acc is not None
    archive = [e for e in full.ledger if e.reference in {"C1", "C2"}]
    for start in (date(2025, 1, 1), date(2025, 12, 1), date(2026, 1, 1), date(2026, 1, 10)):
        expected = build_statement(full, start, date(2026, 1, 31))
        with_archive = build_statement(acc, start, date(2026, 1, 31), archive)
        assert with_archive == expected
        # a posting both archived and still held (the moment between the two writes) counts once
        assert build_statement(full, start, date(2026, 1, 31), archive) == expected
        if start >= date(2026, 1, 1):
            assert build_statement(acc, start, date(2026, 1, 31)) == expected
        else:
            with pytest.raises(ValueError, match="archived before 2026-01-01"):
                build_statement(acc, start, date(2026, 1, 31))
