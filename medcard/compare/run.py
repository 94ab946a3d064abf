"""``medcard compare``: each policy's two sides, each over the same seeds, one simulation
run after another on the same servers (each run its own fleet and namespace), then the
judgement per figure and the reports (JSON and HTML)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from medcard.simulate.run import Options, simulate

from shared.settings import Settings

from .policies import POLICIES, Side, judge

Progress = Callable[[str, int], None]
Say = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Runs:
    """Where each finished run's report is kept, so that a comparison stopped part way
    (a crash, the end of a working session) goes on from the runs it has: a run is found
    again by everything that shapes its outcome (population, months, rates, seed, policy)."""

    folder: Path | None = None
    reuse: bool = False

    @staticmethod
    def key(options: Options) -> str:
        shape = {"persons": options.persons, "months": options.months, "seed": options.seed,
                 "rates": dataclasses.asdict(options.rates), "holidays": options.holidays,
                 "fast_hashing": options.fast_hashing, "service_env": dict(sorted(options.service_env.items()))}
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]

    def found(self, options: Options) -> dict[str, Any] | None:
        if self.folder is None or not self.reuse:
            return None
        path = self.folder / f"{self.key(options)}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def keep(self, options: Options, report: dict[str, Any]) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.key(options)}.json"
        part = path.with_suffix(".part")
        part.write_text(json.dumps(report, ensure_ascii=False))
        part.replace(path)


async def run_side(base: Options, side: Side, seeds: Sequence[int], progress: Progress,
                   say: Say, runs: Runs = Runs()) -> list[dict[str, Any]]:
    reports = []
    for seed in seeds:
        options = dataclasses.replace(base, seed=seed, service_env={**base.service_env, **side.env})
        report = runs.found(options)
        if report is not None:
            say(f"{side.label}, seed {seed}: kept from an earlier run")
        else:
            say(f"{side.label}, seed {seed}")
            report = await simulate(options, progress)
            runs.keep(options, report)
        reports.append(report)
    return reports


def is_default(side: Side) -> bool:
    """The side sets every setting to the services' default: the baseline run."""
    defaults = {f"MEDCARD_{name.upper()}": str(f.default) for name, f in Settings.model_fields.items()}
    return all(defaults.get(k) == v for k, v in side.env.items())


async def compare(base: Options, policies: Sequence[str], seeds: Sequence[int], progress: Progress,
                  say: Say, runs: Runs = Runs()) -> dict[str, Any]:
    """Every chosen policy, both sides, every seed; the report of the comparison. The sides
    that keep every default (today's rules) are one baseline, run once per seed."""
    out: list[dict[str, Any]] = []
    baseline: list[dict[str, Any]] | None = None
    for key in policies:
        policy = POLICIES[key]
        sides = []
        for side in (policy.a, policy.b):
            if is_default(side):
                baseline = baseline or await run_side(base, Side("today's rules", {}), seeds, progress, say, runs)
                sides.append(baseline)
            else:
                sides.append(await run_side(base, side, seeds, progress, say, runs))
        a_reports, b_reports = sides
        out.append({"key": policy.key, "name": policy.name, "question": policy.question,
                    "a": {"label": policy.a.label, "env": dict(policy.a.env), "reports": a_reports},
                    "b": {"label": policy.b.label, "env": dict(policy.b.env), "reports": b_reports},
                    "figures": judge(policy, a_reports, b_reports),
                    "invariants_held": all(all(r["invariants"].values()) for r in (*a_reports, *b_reports))})
    return {"persons": base.persons, "months": base.months, "seeds": list(seeds), "policies": out}
