"""A simulation driving services that are already running: what it needs (all four URLs,
the installation's keys read as they are), what it refuses, and how it tells its own
events from the rest of the stack's. `medcard compare` refuses running services."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from medcard.cli import app
from medcard.simulate.driver import Driver, Holder
from medcard.simulate.population import build_population
from medcard.simulate.run import Options
from medcard.simulate.running import RunScope, refusals, running_stack, stack_keys, stack_settings
from services.identity.config import OPERATOR_PASSWORD_KEY
from shared.keys import KeysUnavailable, existing_keys, new_key
from shared.settings import SECRET_SETTINGS

URLS = {"identity": "http://identity:8000/", "cards": "http://cards:8000", "bank": "http://bank:8000",
        "notifications": "http://notifications:8000"}
NAMES = (*SECRET_SETTINGS, OPERATOR_PASSWORD_KEY)


@pytest.fixture
def keys_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installation's keys file, as the services write it (mode 0600), read-only here."""
    for name in NAMES:
        monkeypatch.delenv(f"MEDCARD_{name.upper()}", raising=False)
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({name: new_key() for name in NAMES}))
    path.chmod(0o400)
    tmp_path.chmod(0o500)  # nothing may be created beside it (a read-only mount)
    yield path
    tmp_path.chmod(0o700)


def test_all_four_urls_or_none() -> None:
    assert running_stack(dict.fromkeys(URLS), Path("k"), "medcard") is None
    stack = running_stack(URLS, Path("k"), "medcard")
    assert stack is not None and stack.urls["identity"] == "http://identity:8000"  # no trailing slash
    with pytest.raises(ValueError, match="--bank-url, --notifications-url missing"):
        running_stack({**URLS, "bank": None, "notifications": ""}, Path("k"), "medcard")


def test_what_only_a_runs_own_services_can_do_is_refused() -> None:
    assert refusals(Options()) == []
    refused = refusals(Options(faults=2, resume=True, fast_hashing=True, service_env={"MEDCARD_PIN_MAX_FAILURES": "5"}))
    assert [why.split(" ")[0] for why in refused] == ["--faults", "--resume", "--fast-hashing", "a"]


def test_the_keys_are_read_and_nothing_is_written_beside_them(keys_file: Path) -> None:
    """From a file and folder mounted read-only (as compose mounts the keys volume for the
    run): nothing is created, locked or completed, as the services' own reading would."""
    before = keys_file.read_text()
    keys = stack_keys(keys_file)
    assert keys == {name: json.loads(before)[name] for name in NAMES}
    stack = running_stack(URLS, keys_file, "medcard7")
    assert stack is not None
    settings, password = stack_settings(stack, "kafka:9092")
    assert (settings.namespace, settings.kafka_bootstrap, password) == ("medcard7", "kafka:9092",
                                                                        keys[OPERATOR_PASSWORD_KEY])
    assert all(getattr(settings, name) == keys[name] for name in SECRET_SETTINGS)
    assert keys_file.read_text() == before and [p.name for p in keys_file.parent.iterdir()] == ["keys.json"]
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o400


def test_a_key_set_in_the_environment_wins_as_it_does_for_the_services(keys_file: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    own = new_key()
    monkeypatch.setenv("MEDCARD_ID_DIGEST_KEY", own)
    assert stack_keys(keys_file)["id_digest_key"] == own


def test_a_missing_file_or_key_is_refused_naming_it_never_made_up(tmp_path: Path) -> None:
    with pytest.raises(KeysUnavailable, match="cannot read the installation's keys at .*absent.json"):
        existing_keys(tmp_path / "absent.json", ["jwt_secret"])
    assert not (tmp_path / "absent.json").exists() and not (tmp_path / "absent.json.lock").exists()
    partial = tmp_path / "keys.json"
    partial.write_text(json.dumps({"jwt_secret": "s3cret-value-never-printed"}))
    with pytest.raises(KeysUnavailable, match="has no otp_key") as refused:
        existing_keys(partial, ["jwt_secret", "otp_key"])
    assert "s3cret" not in str(refused.value)
    partial.write_text("[1, 2]")
    with pytest.raises(KeysUnavailable, match="not a JSON object"):
        existing_keys(partial, ["jwt_secret"])


def test_the_runs_own_events_are_those_of_its_aggregates_or_its_persons() -> None:
    population = build_population(3, 4, tag="abcd1234")
    driver = Driver(eco=None, population=population, rates=None, calendar=None, settings=None,  # type: ignore[arg-type]
                    start=None)  # type: ignore[arg-type]
    driver.holders = {i: Holder(person_id=f"P{i}") for i in range(4)}
    driver._units = {"U3-00000": "UNIT1"}
    ours = RunScope.of(driver)
    merchant = population.merchants[0].merchant_id

    def event(key: str, **data: Any) -> bool:
        return ours({"partitionkey": key}, data)

    assert event("P2") and event("UNIT1") and event(merchant) and event("clock")
    assert event("staff:clerk-abcd1234") and event(f"staff:pos-{merchant.lower()}")
    assert event("message-9", person_id="P1")  # a notification, keyed by its message
    assert not event("P9") and not event("message-9", person_id="P9") and not event("staff:clerk")
    assert not event("staff:operator") and not event("UNIT0")


def test_compare_refuses_running_services_and_says_why() -> None:
    result = CliRunner().invoke(app, ["compare", "--identity-url", "http://identity:8000"])
    assert result.exit_code == 2
    assert "cannot be reconfigured" in result.output and "--kafka, --mongo" in result.output


def test_simulate_refuses_some_urls_and_what_running_services_cannot_do() -> None:
    runner = CliRunner()
    some = runner.invoke(app, ["simulate", "--identity-url", "http://identity:8000"])
    assert some.exit_code == 2 and "all four" in some.output
    urls = [arg for name, url in URLS.items() for arg in (f"--{name}-url", url)]
    faults = runner.invoke(app, ["simulate", *urls, "--faults", "1"])
    assert faults.exit_code == 2 and "--faults" in faults.output
