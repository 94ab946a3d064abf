"""The main job end to end: a small simulation drives the four services (real processes)
over HTTP against the real Kafka broker and MongoDB-wire server, and every invariant holds."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from medcard.simulate.plan import Rates
from medcard.simulate.population import build_population
from medcard.simulate.run import Options, simulate
from shared.settings import Settings

from . import leak_scan

pytestmark = pytest.mark.infra

# Lively rates so that a small population meets every process of the domain.
RATES = Rates(purchases_per_month=4, loss_rate=0.15, thief_share=0.8, shop_share=0.1, cash_share=0.08,
              forgot_pin_rate=0.05, broken_rate=0.03, pin_typo_share=0.1, password_change_rate=0.05)
PORT_BASE = int(os.environ.get("MEDCARD_TEST_SERVICE_PORT_BASE", "8140"))
"""The simulations' services listen on PORT_BASE+1..4 and PORT_BASE+11..14."""
SEED, PERSONS = 11, 30


@dataclass
class Run:
    report: dict[str, Any]
    typed: set[str]
    """Every password, PIN and ID number the simulation sent to the services."""
    state_dir: Path


@pytest.fixture(scope="module")
async def small_run(infra: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Run]:
    """One small simulation, shared by the tests that read its outcome (its services log at INFO)."""
    state_dir, typed = tmp_path_factory.mktemp("simulation"), set[str]()
    options = Options(persons=PERSONS, months=2, seed=SEED, rates=RATES, kafka_bootstrap=infra.kafka_bootstrap,
                      mongo_url=infra.mongo_url, port_base=PORT_BASE, state_dir=state_dir, log_level="INFO",
                      typed=typed)
    yield Run(await simulate(options, lambda _what, _n: None), typed, state_dir)


async def test_a_small_simulation_keeps_every_invariant_and_its_counts_add_up(small_run: Run) -> None:
    report = small_run.report

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
    assert report["monthly_transfers"]["count"] == PERSONS * (1 + 2)
    assert report["monthly_transfers"]["total_fen"] > 0
    assert report["events_published"] == sum(by_type.values())
    assert report["loss_to_block"]["applied_by_bank"] == report["loss_to_block"]["reports"]
    # Each loss report of a person answered with the block confirmed or pending (the stamp reports the rest).
    assert 0 < sum(report["loss_to_block"]["answered"].values()) <= report["loss_to_block"]["reports"]
    assert report["dead_letters"] == 0


BUSINESS_KEYS = ("events_by_type", "purchases", "losses", "fraud_attempts_blocked", "replacements",
                 "monthly_transfers", "invariants")


async def test_the_same_seed_gives_the_same_business_outcome_even_with_faults(infra: Any, tmp_path: Path) -> None:
    """Two separate ecosystems, the second one crashed, cut from its broker and from its database
    while events were in flight (a soak with seeded faults): same business outcome, all invariants."""
    async def small(seed: int, faults: int) -> dict[str, Any]:
        options = Options(persons=12, months=2, seed=seed, rates=RATES, kafka_bootstrap=infra.kafka_bootstrap,
                          mongo_url=infra.mongo_url, port_base=PORT_BASE + 10, state_dir=tmp_path, faults=faults,
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


async def test_no_id_number_password_or_pin_is_in_any_event_log_or_stored_document(small_run: Run,
                                                                                  infra: Any) -> None:
    """Scans every record the simulation's services published (dead letters included), their
    logs and their databases for what the simulated people typed."""
    population = build_population(SEED, PERSONS)
    typed = small_run.typed
    # What was typed covers the population (and more: staff passwords, wrong and new PINs).
    assert {p.id_number for p in population.persons} <= typed
    assert {p.pin for p in population.persons} <= typed
    assert {p.password for p in population.persons if p.online} <= typed
    secrets = leak_scan.Secrets.of(typed)
    assert len(secrets.pins) > PERSONS  # the first PINs, and wrong, reset and changed ones

    namespace = small_run.report["namespace"]
    records = await leak_scan.topic_records(infra.kafka_bootstrap, namespace)
    logs = sorted((small_run.state_dir / "sim" / "services" / "logs").glob("*.out"))
    settings = Settings(namespace=namespace)
    databases = [settings.database(s) for s in ("identity", "cards", "bank", "notifications")]
    stored = await leak_scan.stored_documents(infra.mongo_url, databases)

    # The scan saw what it had to: every event, each service's log (at INFO), every database.
    assert len(records) >= small_run.report["events_published"] > 0
    assert [p.name for p in logs] == ["bank.out", "cards.out", "identity.out", "notifications.out"]
    assert all('"service.started"' in p.read_text() for p in logs)
    assert {name.split(".")[0] for name in stored} == set(databases)

    assert leak_scan.scan_records(records, secrets) == []
    assert leak_scan.scan_logs(logs, secrets) == []
    assert leak_scan.scan_stored(stored, secrets) == []
    # Passwords and PINs are stored as argon2id hashes of at least OWASP's cost (19 MiB, 2 passes).
    found = leak_scan.hashes(stored)
    assert {where.split(" ")[1].rsplit(".", 1)[-1] for where, _ in found} == {"password_hash", "pin_hash"}
    weak = [(where, value[:40]) for where, value in found
            if not (m := leak_scan.ARGON2.match(value)) or int(m.group(1)) < 19 * 1024 or int(m.group(2)) < 2]
    assert weak == []


async def test_a_run_crashed_mid_way_then_stopped_then_resumed_reports_what_an_uninterrupted_run_does(
        infra: Any, tmp_path: Path) -> None:
    """``--resume``: one run goes straight through; another of the same seed dies once a day's
    actions are all answered but before its progress was saved (its day's journal holds them),
    is resumed, is asked to stop (as Ctrl-C does) some days later, and is resumed again to the
    end. Both report the same business outcome, every invariant true."""
    from medcard.simulate.driver import Stopped

    def options(**changes: Any) -> Options:
        return Options(persons=12, months=1, seed=31, rates=RATES, kafka_bootstrap=infra.kafka_bootstrap,
                       mongo_url=infra.mongo_url, port_base=PORT_BASE + 20, state_dir=tmp_path, **changes)

    straight = await simulate(options(), lambda _what, _n: None)
    progress = tmp_path / "progress"
    days = 0

    def count_days(crash_on: int | None) -> Any:
        def progress_of(what: str, n: int) -> None:
            nonlocal days
            days += n if what == "days" else 0
            if days == crash_on:
                raise RuntimeError("the simulator died")
        return progress_of

    with pytest.raises(RuntimeError, match="the simulator died"):
        await simulate(options(progress_dir=progress), count_days(crash_on=6))
    saved = json.loads((progress / "progress.json").read_text())
    assert (saved["day_number"], saved["acted"]) == (4, True)  # day 6's actions are only in its journal
    days = 0
    with pytest.raises(Stopped):
        await simulate(options(progress_dir=progress, resume=True), count_days(crash_on=None),
                       stopping=lambda: days >= 20)
    stopped = json.loads((progress / "progress.json").read_text())
    assert stopped["day_number"] == 19
    services = {"identity", "cards", "bank", "notifications"}
    assert all(stopped["cpu_seconds"][s] > 0 and stopped["peak_memory_mb"][s] > 0 for s in services), stopped
    other_options = dataclasses.replace(options(progress_dir=progress, resume=True), persons=1, seed=1)
    resumed = await simulate(other_options, lambda _what, _n: None)

    assert resumed["resumed"] and (resumed["seed"], resumed["persons"]) == (31, 12)  # the saved options
    assert resumed["namespace"] == saved["namespace"] != straight["namespace"]
    assert all(resumed["invariants"].values()), resumed["invariants"]
    # The processes' figures are the whole run's: CPU summed over the pieces, the highest peak.
    assert all(resumed["cpu_seconds"][s] > stopped["cpu_seconds"][s] for s in services), resumed["cpu_seconds"]
    assert all(resumed["peak_memory_mb"][s] >= stopped["peak_memory_mb"][s] for s in services)

    def business(r: dict[str, Any]) -> dict[str, Any]:
        out = {k: r[k] for k in (*BUSINESS_KEYS, "start_date", "end_date", "nothing_lost_detail")}
        out["events_by_type"] = {t: n for t, n in r["events_by_type"].items() if not t.startswith("Notification")}
        out["loss_reports"] = r["loss_to_block"]["reports"]  # (whether each answered its block confirmed is timing)
        return out

    assert business(resumed) == business(straight)
    assert straight["purchases"]["authorised"] > 0


async def test_the_html_report_draws_every_chart_in_a_browser_without_the_network(small_run: Run,
                                                                                 tmp_path: Path) -> None:
    """The report people look at, opened in headless Chromium from a file: every chart is
    drawn (marks with a size, no "no data"), and the page asks for nothing but itself."""
    from playwright.async_api import async_playwright, expect

    from medcard.report.html import simulation_html
    from tests.e2e.test_console_browser import CHROMIUM, CHROMIUM_ARGS

    page_file = tmp_path / "report.html"
    page_file.write_text(simulation_html(small_run.report), encoding="utf-8")
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await chromium.new_page()
            asked: list[str] = []
            page.on("request", lambda request: asked.append(request.url))
            await page.goto(page_file.as_uri())
            charts = page.locator("svg.chart")
            await expect(charts).to_have_count(5)
            for i in range(5):
                chart = charts.nth(i)
                box = await chart.bounding_box()
                assert box is not None and box["width"] > 300 and box["height"] > 100
                assert await chart.locator("text.empty").count() == 0, await chart.get_attribute("aria-label")
                marks = chart.locator("rect[data-series], polyline[data-series]")
                assert await marks.count() > 0
                sized = await marks.first.bounding_box()
                assert sized is not None and sized["width"] > 0 and sized["height"] > 0
            assert asked == [page_file.as_uri()]
        finally:
            await chromium.close()
