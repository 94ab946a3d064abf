"""The simulated population and its plans are reproducible from the seed and sensible."""

from __future__ import annotations

from collections import Counter
from datetime import date

from medcard.simulate.plan import Planner, Rates
from medcard.simulate.population import build_population
from shared.calendar import BusinessCalendar
from shared.ids import validate_id_number, validate_mobile

CAL = BusinessCalendar()


def plan_of(seed: int, persons: int = 300) -> dict[date, list[object]]:
    planner = Planner(build_population(seed, persons), Rates(), CAL)
    return planner.month(0, date(2026, 3, 1), date(2026, 3, 31))


def test_the_same_seed_gives_the_same_population_and_plan() -> None:
    assert build_population(7, 200) == build_population(7, 200)
    assert plan_of(7) == plan_of(7)


def test_another_seed_gives_another_population() -> None:
    assert build_population(7, 50).persons != build_population(8, 50).persons


def test_every_person_has_a_valid_unique_id_number_and_mobile() -> None:
    people = build_population(3, 2000).persons
    assert len({p.id_number for p in people}) == 2000
    for p in people:
        validate_id_number(p.id_number)
        validate_mobile(p.mobile)
        assert len(p.pin) == 6 and p.pin.isdigit()
        assert p.contribution_fen > 0


def test_there_are_designated_hospitals_and_pharmacies_and_some_shops() -> None:
    kinds = Counter((m.kind, m.designated) for m in build_population(1, 1000).merchants)
    assert kinds[("hospital", True)] and kinds[("pharmacy", True)] and kinds[("shop", False)]


def test_contributions_are_paid_on_the_first_working_day_by_every_unit() -> None:
    population = build_population(5, 300)
    plan = Planner(population, Rates(), CAL).month(0, date(2026, 3, 1), date(2026, 3, 31))
    first_working = date(2026, 3, 2)  # 1 March 2026 is a Sunday
    paid = [a for a in plan[first_working] if a.kind == "pay_contributions"]
    assert {a.note for a in paid} == {u.key for u in population.units}


def test_a_lost_card_is_reported_and_then_replaced_and_not_used_by_its_owner_again_that_month() -> None:
    planner = Planner(build_population(11, 2000), Rates(loss_rate=0.05), CAL)
    plan = planner.month(0, date(2026, 3, 1), date(2026, 3, 31))
    for day, actions in plan.items():
        for a in actions:
            if a.kind == "report_loss":
                later = [b for d, bs in plan.items() if d > day for b in bs if b.person == a.person]
                assert any(b.kind == "apply_replacement" for b in later)
    next_month = planner.month(1, date(2026, 4, 1), date(2026, 4, 30))
    lost = {a.person for acts in plan.values() for a in acts if a.kind == "report_loss"}
    assert lost
    assert not [a for acts in next_month.values() for a in acts if a.person in lost and a.kind == "purchase"]


def test_thieves_try_before_or_after_the_report_and_never_on_a_card_not_lost() -> None:
    plan = Planner(build_population(2, 3000), Rates(loss_rate=0.05, thief_share=1.0), CAL).month(
        0, date(2026, 3, 1), date(2026, 3, 31))
    actions = [a for acts in plan.values() for a in acts]
    lost = {a.person for a in actions if a.kind == "report_loss"}
    thieves = [a for a in actions if a.kind == "thief"]
    assert {a.note for a in thieves} == {"before", "after"}
    assert {a.person for a in thieves} <= lost


def test_a_run_tag_changes_only_the_identifiers_a_running_stack_keeps_unique() -> None:
    """Runs against services that keep every earlier run's registers: with a tag the ID numbers,
    account numbers, merchant ids and staff usernames differ from the seed's (and between
    tags), everything the plan and the outcome draw is the seed's; without one nothing moves."""
    plain, first, second = build_population(7, 400), build_population(7, 400, tag="a1b2c3d4"), \
        build_population(7, 400, tag="e5f6a7b8")
    assert plain == build_population(7, 400, tag="") and plain.staff("clerk") == "clerk"
    assert first == build_population(7, 400, tag="a1b2c3d4")  # reproducible from seed and tag
    identifiers = ("id_number", "account_number")
    for p, a, b in zip(plain.persons, first.persons, second.persons, strict=True):
        assert len({getattr(x, k) for x in (p, a, b) for k in identifiers}) == 6
        validate_id_number(a.id_number)
        unchanged = {k: v for k, v in vars(p).items() if k not in identifiers}
        assert unchanged == {k: v for k, v in vars(a).items() if k not in identifiers}
    for run in (plain, first, second):
        assert len({p.id_number for p in run.persons}) == 400
    assert not {p.id_number for p in first.persons} & {p.id_number for p in second.persons}
    assert not {m.merchant_id for m in first.merchants} & {m.merchant_id for m in plain.merchants}
    assert [(m.name, m.kind) for m in first.merchants] == [(m.name, m.kind) for m in plain.merchants]
    assert first.staff("clerk") != second.staff("clerk") != "clerk"
    assert [u.key for u in first.units] == [u.key for u in plain.units]
    # The plan of a month: the same actions, by the same persons, at the tag's merchants.
    def actions(population: object) -> list[tuple[str, int, int, str]]:
        plan = Planner(population, Rates(), CAL).month(0, date(2026, 3, 1), date(2026, 3, 31))  # type: ignore[arg-type]
        return [(a.kind, a.person, a.amount_fen, a.merchant.split("-")[-1]) for d in sorted(plan) for a in plan[d]]
    assert actions(first) == actions(plain)
