"""The main job on services that are already running, as `medcard up` leaves them (their
keys file, their default rate limits): the simulation given their URLs runs twice on the
same stack, each time with every invariant true, each report counting only its own run,
even with someone else's business on the stack landing while the second one runs."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from medcard.services import ServiceFleet
from medcard.simulate.cli import write_reports
from medcard.simulate.client import Ecosystem, once_known
from medcard.simulate.run import Options, simulate
from medcard.simulate.running import RunningStack, running_stack, stack_settings
from shared.ids import make_id_number
from shared.keys import KEYS_FILE_NAME

from . import leak_scan
from .test_simulation import PORT_BASE

pytestmark = pytest.mark.infra
PERSONS, SEED = 15, 5
PORTS = {name: PORT_BASE + 31 + i for i, name in enumerate(("identity", "cards", "bank", "notifications"))}
"""PORT_BASE+31..34: the other simulations of the e2e tests use +1..4, +11..14 and +21..24."""
BYSTANDER_FEN = 12_345


async def test_two_runs_on_one_running_stack_each_keep_every_invariant_and_count_only_their_own(
        infra: Any, tmp_path: Path) -> None:
    namespace = f"up{uuid.uuid4().hex[:8]}"
    state_dir = tmp_path / "stack"
    # As `medcard up` starts them: development, the keys file in the state folder, default limits.
    fleet = ServiceFleet(state_dir, kafka_bootstrap=infra.kafka_bootstrap, mongo_url=infra.mongo_url, ports=PORTS,
                         extra_env={"MEDCARD_ENVIRONMENT": "development", "MEDCARD_NAMESPACE": namespace})
    await asyncio.to_thread(fleet.down)
    await asyncio.to_thread(fleet.up)
    try:
        stack = running_stack(fleet.urls(), state_dir / KEYS_FILE_NAME, namespace)
        assert stack is not None
        options = Options(persons=PERSONS, months=1, seed=SEED, kafka_bootstrap=infra.kafka_bootstrap, stack=stack)
        reports = []
        for run in ("first", "second"):
            if run == "second":
                await _someone_elses_contribution(stack, infra.kafka_bootstrap, reports[0]["end_date"])
            report = await simulate(options, lambda _what, _n: None)
            (tmp_path / run).mkdir()
            page = write_reports(report, tmp_path / run / "report.json")
            assert json.loads((tmp_path / run / "report.json").read_text()) == report
            assert page == tmp_path / run / "report.html" and "<svg" in page.read_text()
            reports.append(report)
        on_topics = Counter(_type(r) for r in await leak_scan.topic_records(infra.kafka_bootstrap, namespace))
    finally:
        await asyncio.to_thread(fleet.down)

    first, second = reports
    for report in reports:
        assert report["invariants"] == {
            "money_conserved": True, "no_purchase_after_loss": True, "one_active_card_per_person": True,
            "projections_agree": True, "nothing_lost": True,
        }
        assert report["namespace"] == namespace and report["dead_letters"] == 0
        by_type = report["events_by_type"]
        # Only the run's own people: 15 registered and as many accounts, and one transfer per
        # person at each month end (the opening month's and the simulated one's).
        assert by_type["PersonRegistered"] == by_type["AccountOpened"] == PERSONS
        assert report["monthly_transfers"]["count"] == PERSONS * 2
        assert report["projections_checked"]["persons"] == PERSONS
        assert report["purchases"]["authorised"] > 0
    # Each run its own tag; the second starts where the first left the business clock.
    assert first["stack"]["run_tag"] != second["stack"]["run_tag"]
    assert second["start_date"] == first["end_date"]
    # The stack holds both runs' people and a bystander, whose month-end transfer landed
    # while the second run ran (and moved the bank's ledger): neither report counts it.
    assert on_topics["PersonRegistered"] == 2 * PERSONS + 1
    assert on_topics["MonthlyTransfer"] == 4 * PERSONS + 1
    assert second["monthly_transfers"]["total_fen"] == first["monthly_transfers"]["total_fen"]  # the same seed


async def _someone_elses_contribution(stack: RunningStack, kafka: str, business_date: str) -> None:
    """Between the runs someone else registers a person on the stack, issues their card (which
    opens their bank account) and their employer pays this month's contribution: the bank
    transfers it at the month's end, under the second run's clock."""
    settings, operator_password = stack_settings(stack, kafka)
    eco = Ecosystem(dict(stack.urls), operator_password)
    await eco.open()
    try:
        await eco.login_operator()
        await eco.create_staff("bystander-clerk", "clerk", secrets.token_urlsafe(12), who="clerk")
        unit = await eco.call("identity", "POST", "/v1/units", who="clerk", json={"name": "旁观者有限公司"})
        born = date(1950, 1, 1) + timedelta(days=secrets.randbelow(365 * 40))
        person = await eco.call("identity", "POST", "/v1/persons", who="clerk", json={
            "name": "路人甲", "id_number": make_id_number("650102", born, secrets.randbelow(1000)),
            "mobile": "13900000000", "household_number": "HR0000000001", "unit_id": unit["unit_id"],
            "language": "zh"})
        await once_known(lambda: eco.call("cards", "POST", "/v1/cards", who="clerk",
                                          json={"person_id": person["person_id"]}), "the bystander")
        await eco.call("identity", "POST", "/v1/contributions", who="clerk", json={
            "unit_id": unit["unit_id"], "month": business_date[:7],
            "items": [{"person_id": person["person_id"], "amount_fen": BYSTANDER_FEN}]})
    finally:
        await eco.close()
    assert settings.namespace == stack.namespace


def _type(record: Any) -> str:
    """The event's name from its CloudEvents type (``cn.medcard.bank.MonthlyTransfer.v1``)."""
    ce_type = dict(record.headers or ()).get("ce_type", b"").decode()
    return ce_type.split(".")[-2] if ce_type.count(".") >= 2 else ""
