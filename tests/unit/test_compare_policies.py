"""The policy comparison's judgement: figures read from verified reports, and a difference
counted only when the seeds' ranges do not overlap."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from medcard.compare.policies import POLICIES, beyond_noise, judge, spread
from medcard.compare.run import Runs
from medcard.simulate.plan import Rates
from medcard.simulate.run import Options
from shared.settings import Settings


def test_each_policy_sets_two_different_values_of_a_setting_the_services_read() -> None:
    known = {f"MEDCARD_{name.upper()}" for name in Settings.model_fields}
    assert set(POLICIES) == {"loss-propagation", "replacement-wait", "pin-tries"}
    for policy in POLICIES.values():
        assert set(policy.a.env) == set(policy.b.env) and set(policy.a.env) <= known, policy.key
        assert policy.a.env != policy.b.env and policy.a.label != policy.b.label
        assert policy.figures


def test_ranges_that_overlap_are_noise_and_one_seed_tells_nothing() -> None:
    assert beyond_noise([1, 2, 3], [4, 5, 6]) is True
    assert beyond_noise([1, 2, 5], [4, 5, 6]) is False
    assert beyond_noise([1], [100]) is False
    s = spread([2, 4, 9])
    assert (s.mean, s.low, s.high, s.half_range) == (5.0, 2, 9, 3.5)


def test_a_policy_is_judged_figure_by_figure_from_the_reports() -> None:
    policy = POLICIES["loss-propagation"]
    instant = [{"loss_to_block": {"purchases_inside_window": 0, "fen_inside_window": 0, "latency_ms_p99": 40},
                "fraud_attempts_blocked": n} for n in (3, 4)]
    nightly = [{"loss_to_block": {"purchases_inside_window": n, "fen_inside_window": 1000 * n,
                                  "latency_ms_p99": 8.6e7}, "fraud_attempts_blocked": 1} for n in (2, 5)]
    rows = {r["figure"]: r for r in judge(policy, instant, nightly)}
    approved = rows["fraudulent purchases approved (inside the loss window)"]
    assert (approved["a_mean"], approved["b_mean"], approved["b_spread"]) == (0.0, 3.5, 1.5)
    assert approved["difference"] == 3.5 and approved["outside_noise"] is True
    assert rows["fraud alerts sent"]["difference"] == -2.5 and rows["fraud alerts sent"]["better"] == "higher"


def test_a_finished_run_is_found_again_only_by_what_shapes_its_outcome(tmp_path: Path) -> None:
    runs = Runs(tmp_path, reuse=True)
    base = Options(persons=50, months=2, seed=1, service_env={"MEDCARD_PIN_MAX_FAILURES": "5"})
    assert runs.found(base) is None
    runs.keep(base, {"events_published": 12})
    assert runs.found(dataclasses.replace(base, port_base=9000)) == {"events_published": 12}
    for other in (dataclasses.replace(base, seed=2), dataclasses.replace(base, months=3),
                  dataclasses.replace(base, service_env={"MEDCARD_PIN_MAX_FAILURES": "3"}),
                  dataclasses.replace(base, rates=Rates(loss_rate=0.5))):
        assert runs.found(other) is None
    assert Runs(tmp_path, reuse=False).found(base) is None, "without --resume every run is run again"
    assert [p.suffix for p in tmp_path.iterdir()] == [".json"]
