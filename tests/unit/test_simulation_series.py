"""The report's series, folded from events as the verifier reads them: business days from
the events' own dates or the clock's instants, purchases by outcome, month-end balances,
replacement waits in working days, and the days people spent without a usable card."""

from __future__ import annotations

from datetime import date
from typing import Any

from medcard.simulate.series import Series
from shared.calendar import BusinessCalendar

START = date(2026, 2, 2)  # a Monday


def clock(series: Series, at: str, day: date) -> None:
    series.add("clock", "BusinessDateAdvanced", {"time": at}, {"date": day.isoformat(),
                                                             "previous_date": START.isoformat()})


def add(series: Series, service: str, name: str, data: dict[str, Any], at: str = "") -> None:
    series.add(service, name, {"time": at} if at else {}, data)


def test_days_come_from_the_event_or_from_the_clock_at_its_instant() -> None:
    s = Series(BusinessCalendar(), START)
    clock(s, "2026-12-06T01:00:00Z", date(2026, 2, 3))
    clock(s, "2026-12-06T01:00:05Z", date(2026, 2, 4))
    add(s, "bank", "PurchaseAuthorised", {"business_date": "2026-02-03", "amount_fen": 500})
    add(s, "cards", "CardIssued", {"person_id": "P1", "card_number": "C1"}, at="2026-12-06T01:00:03Z")
    add(s, "bank", "PurchaseDeclined", {"business_date": "2026-02-04", "reason_code": "51"})
    add(s, "cards", "CardIssued", {"person_id": "P2", "card_number": "C2"}, at="2026-12-06T00:59:00Z")
    r = s.result([12.0])
    assert r["days"] == ["2026-02-02", "2026-02-03", "2026-02-04"]
    assert r["events_by_day"]["CardIssued"] == [1, 1, 0]  # one before the first advance, one on the 3rd
    assert r["purchases_by_day"] == {"51": [0, 0, 1], "approved": [0, 1, 0]}
    assert r["loss_to_block_ms"] == [12.0]


def test_month_end_balances_add_credits_and_take_the_months_purchases() -> None:
    s = Series(BusinessCalendar(), START)
    for person, amount, after in (("P1", 12850, 12850), ("P2", 9000, 9000), ("P3", 100, 100)):
        add(s, "bank", "MonthlyTransfer", {"person_id": person, "month": "2026-01", "amount_fen": amount,
                                           "balance_after_fen": after})
    add(s, "bank", "PurchaseAuthorised", {"business_date": "2026-02-10", "amount_fen": 3550})
    add(s, "bank", "MonthlyTransfer", {"person_id": "P1", "month": "2026-02", "amount_fen": 1000,
                                       "balance_after_fen": 10300})
    ends = s.result([])["balances_at_month_end"]
    assert ends["2026-01"] == {"accounts": 3, "total_fen": 21950, "median_fen": 9000}
    assert ends["2026-02"] == {"accounts": 1, "total_fen": 21950 - 3550 + 1000, "median_fen": 10300}


def test_replacement_waits_count_working_days_and_cardless_days_end_at_the_new_cards_activation() -> None:
    s = Series(BusinessCalendar(), START)
    add(s, "cards", "CardLost", {"person_id": "P1", "card_number": "C1", "business_date": "2026-02-02"})
    add(s, "cards", "ReplacementRequested", {"person_id": "P1", "receipt_number": "R1", "business_date": "2026-02-03"})
    add(s, "cards", "ReplacementReady", {"person_id": "P1", "receipt_number": "R1", "ready_on": "2026-02-24"})
    add(s, "cards", "CardIssued", {"person_id": "P1", "card_number": "C9", "replaces": "C1",
                                   "business_date": "2026-02-25"})
    add(s, "cards", "CardActivated", {"person_id": "P1", "card_number": "C9", "business_date": "2026-02-25"})
    add(s, "cards", "ReplacementRequested", {"person_id": "P2", "receipt_number": "R2", "business_date": "2026-02-20"})
    assert s.result([])["replacement_waits"] == [15]  # 2026-02-03 to 02-24: 15 working days
    assert s.cardless_days == 23
    assert s.person_days_without_a_card(date(2026, 2, 28)) == 23 + 8  # P2 still waits
