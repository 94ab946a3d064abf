"""The main job end to end: a small simulation drives the four services (real processes)
over HTTP against the real Kafka broker and MongoDB-wire server, and every invariant holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from medcard.simulate.plan import Rates
from medcard.simulate.run import Options, simulate

pytestmark = pytest.mark.infra

# Lively rates so that a small population meets every process of the domain.
RATES = Rates(purchases_per_month=4, loss_rate=0.15, thief_share=0.8, shop_share=0.1, cash_share=0.08,
              forgot_pin_rate=0.05, broken_rate=0.03, pin_typo_share=0.1, password_change_rate=0.05)


async def run(infra: Any, tmp_path: Path, seed: int) -> dict[str, Any]:
    options = Options(persons=30, months=2, seed=seed, rates=RATES, kafka_bootstrap=infra.kafka_bootstrap,
                      mongo_url=infra.mongo_url, port_base=8140, state_dir=tmp_path)
    return await simulate(options, lambda _what, _n: None)


async def test_a_small_simulation_keeps_every_invariant_and_its_counts_add_up(infra: Any, tmp_path: Path) -> None:
    report = await run(infra, tmp_path, seed=11)

    assert report["invariants"] == {
        "money_conserved": True, "no_purchase_after_loss": True, "one_active_card_per_person": True,
        "projections_agree": True, "nothing_lost": True,
    }
    by_type = report["events_by_type"]
    declined = report["purchases"]["declined"]
    # Declines by reason add up to every decline, and the reasons the plan provokes all occur.
    assert sum(declined.values()) == by_type["PurchaseDeclined"]
    assert {"58", "57", "55", "41"} <= set(declined)
    assert report["purchases"]["authorised"] == by_type["PurchaseAuthorised"] > 0
    # Every lost card reported was refused to the thief afterwards with a fraud alert.
    assert report["fraud_attempts_blocked"] == declined["41"] > 0
    assert sum(report["losses"].values()) == by_type["CardLost"] > 0
    r = report["replacements"]
    assert 0 < r["collected"] <= r["ready"] <= r["stamped"] <= r["requested"]
    # One transfer per person per month end crossed (the opening month and each simulated one).
    assert report["monthly_transfers"]["count"] == 30 * (1 + 2)
    assert report["monthly_transfers"]["total_fen"] > 0
    assert report["events_published"] == sum(by_type.values())
    assert report["loss_to_block"]["applied_by_bank"] == report["loss_to_block"]["reports"]
    assert report["dead_letters"] == 0


BUSINESS_KEYS = ("events_by_type", "purchases", "losses", "fraud_attempts_blocked", "replacements",
                 "monthly_transfers", "invariants")


async def test_the_same_seed_gives_the_same_business_outcome_even_with_faults(infra: Any, tmp_path: Path) -> None:
    """Two separate ecosystems, the second one crashed, cut from its broker and from its database
    while events were in flight (a soak with seeded faults): same business outcome, all invariants."""
    async def small(seed: int, faults: int) -> dict[str, Any]:
        options = Options(persons=12, months=2, seed=seed, rates=RATES, kafka_bootstrap=infra.kafka_bootstrap,
                          mongo_url=infra.mongo_url, port_base=8150, state_dir=tmp_path, faults=faults,
                          servers=infra.controls if faults else None)
        return await simulate(options, lambda _what, _n: None)

    calm, stormy = await small(23, 0), await small(23, 4)
    assert calm["namespace"] != stormy["namespace"]  # two separate ecosystems
    assert all(stormy["invariants"].values()), stormy["invariants"]
    faults = stormy["faults"]
    assert faults["injected"] == faults["survived"] == 4
    assert set(faults["by_kind"]) == {"kill_service", "kafka_outage", "database_outage"}
    # An SMS being sent when its service was killed is sent again after its lease: the
    # notifications' own events may come later, everything else is identical.
    def business(r: dict[str, Any]) -> dict[str, Any]:
        out = {k: r[k] for k in BUSINESS_KEYS}
        out["events_by_type"] = {t: n for t, n in r["events_by_type"].items() if not t.startswith("Notification")}
        return out

    assert business(calm) == business(stormy)
    assert calm["purchases"]["authorised"] > 0
