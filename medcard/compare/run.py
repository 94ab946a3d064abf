"""``medcard compare``: each policy's two sides, each over the same seeds, one simulation
run after another on the same servers (each run its own fleet and namespace), then the
judgement per figure and the reports (JSON and HTML)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from medcard.simulate.run import Options, simulate

from shared.settings import Settings

from .policies import POLICIES, Side, judge

Progress = Callable[[str, int], None]
Say = Callable[[str], None]


async def run_side(base: Options, side: Side, seeds: Sequence[int], progress: Progress,
                   say: Say) -> list[dict[str, Any]]:
    reports = []
    for seed in seeds:
        say(f"{side.label}, seed {seed}")
        options = dataclasses.replace(base, seed=seed, service_env={**base.service_env, **side.env})
        reports.append(await simulate(options, progress))
    return reports


def is_default(side: Side) -> bool:
    """The side sets every setting to the services' default: the baseline run."""
    defaults = {f"MEDCARD_{name.upper()}": str(f.default) for name, f in Settings.model_fields.items()}
    return all(defaults.get(k) == v for k, v in side.env.items())


async def compare(base: Options, policies: Sequence[str], seeds: Sequence[int], progress: Progress,
                  say: Say) -> dict[str, Any]:
    """Every chosen policy, both sides, every seed; the report of the comparison. The sides
    that keep every default (today's rules) are one baseline, run once per seed."""
    out: list[dict[str, Any]] = []
    baseline: list[dict[str, Any]] | None = None
    for key in policies:
        policy = POLICIES[key]
        sides = []
        for side in (policy.a, policy.b):
            if is_default(side):
                baseline = baseline or await run_side(base, Side("today's rules", {}), seeds, progress, say)
                sides.append(baseline)
            else:
                sides.append(await run_side(base, side, seeds, progress, say))
        a_reports, b_reports = sides
        out.append({"key": policy.key, "name": policy.name, "question": policy.question,
                    "a": {"label": policy.a.label, "env": dict(policy.a.env), "reports": a_reports},
                    "b": {"label": policy.b.label, "env": dict(policy.b.env), "reports": b_reports},
                    "figures": judge(policy, a_reports, b_reports),
                    "invariants_held": all(all(r["invariants"].values()) for r in (*a_reports, *b_reports))})
    return {"persons": base.persons, "months": base.months, "seeds": list(seeds), "policies": out}
