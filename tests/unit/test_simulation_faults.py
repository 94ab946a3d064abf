"""The fault plan of a soak run: reproducible from the seed, every kind before any repeats."""

from __future__ import annotations

from medcard.services import SERVICES
from medcard.simulate.faults import KINDS, plan_faults


def test_the_same_seed_plans_the_same_faults() -> None:
    assert plan_faults(7, 5, 56) == plan_faults(7, 5, 56)
    assert plan_faults(7, 5, 56) != plan_faults(8, 5, 56)


def test_faults_fall_on_distinct_days_inside_the_run_and_cover_every_kind() -> None:
    plan = plan_faults(3, 6, 28)
    assert len(plan) == 6 and all(0 <= day < 28 and f.day == day for day, f in plan.items())
    kinds = [f.kind for f in plan.values()]
    assert all(kinds.count(k) == 2 for k in KINDS)
    for f in plan.values():
        assert (f.target in SERVICES) if f.kind == "kill_service" else f.target == ""
        assert 0 <= f.delay <= 0.3


def test_no_more_faults_than_days_and_none_when_none_asked() -> None:
    assert len(plan_faults(1, 50, 10)) == 10
    assert plan_faults(1, 0, 10) == {}
