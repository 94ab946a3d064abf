"""docker-compose.yml cannot run here (no Docker engine), so it is checked as data:
services, images, ports, health checks, start order, and the settings the services read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from typer.main import get_command

from medcard.cli import app
from medcard.ports import SERVICE_PORTS
from shared.settings import SECRET_SETTINGS, Settings
from tests.compose_spec import compose_schema

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = ("identity", "cards", "bank", "notifications")


def test_the_stack_has_kafka_mongo_a_topic_step_the_four_services_and_the_console() -> None:
    assert set(COMPOSE["services"]) == {"kafka", "mongo", "topics", *SERVICES, "console", "simulate"}
    assert COMPOSE["services"]["kafka"]["image"].startswith("apache/kafka:4.")
    assert COMPOSE["services"]["mongo"]["image"].startswith("mongo:")


def test_kafka_runs_in_kraft_mode_without_auto_created_topics() -> None:
    env = COMPOSE["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_every_service_is_built_here_has_a_health_check_and_waits_for_its_dependencies() -> None:
    for name in SERVICES:
        svc = COMPOSE["services"][name]
        assert svc["build"] == "."
        assert "/ready" in " ".join(svc["healthcheck"]["test"])
        assert svc["depends_on"]["topics"]["condition"] == "service_completed_successfully"
        assert svc["depends_on"]["mongo"]["condition"] == "service_healthy"
        assert svc["environment"]["SERVICE"] == name
    assert COMPOSE["services"]["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert "healthcheck" in COMPOSE["services"]["kafka"] and "healthcheck" in COMPOSE["services"]["mongo"]


PUBLISH = "${MEDCARD_PUBLISH_ADDRESS:-127.0.0.1}"
"""Ports are published on the loopback address unless MEDCARD_PUBLISH_ADDRESS says otherwise."""


def test_host_ports_match_the_local_stack_and_listen_on_loopback_only() -> None:
    for name in SERVICES:
        assert COMPOSE["services"][name]["ports"] == [f"{PUBLISH}:{SERVICE_PORTS[name]}:8000"]
    assert COMPOSE["services"]["kafka"]["ports"] == [f"{PUBLISH}:19092:19092"]
    assert COMPOSE["services"]["mongo"]["ports"] == [f"{PUBLISH}:27027:27017"]
    published = [port for svc in COMPOSE["services"].values() for port in svc.get("ports", [])]
    assert all(port.startswith(PUBLISH + ":") for port in published), published


def test_no_key_is_written_in_compose_or_the_image_and_the_services_share_generated_ones() -> None:
    secret_names = {f"MEDCARD_{name.upper()}" for name in SECRET_SETTINGS}
    for name in ("topics", *SERVICES):
        svc = COMPOSE["services"][name]
        assert not secret_names & set(svc["environment"]), f"{name} has a key in docker-compose.yml"
        assert svc["environment"]["MEDCARD_KEYS_FILE"] == "/var/lib/medcard/keys.json"
        assert "medcard-keys:/var/lib/medcard" in svc["volumes"]
    assert "medcard-keys" in COMPOSE["volumes"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert not any(name in dockerfile.replace("MEDCARD_*_KEY / MEDCARD_JWT_SECRET", "") for name in secret_names)
    assert "USER medcard" in dockerfile and "MEDCARD_KEYS_FILE=/var/lib/medcard/keys.json" in dockerfile


def test_the_environment_names_only_settings_the_services_read() -> None:
    known = {f"MEDCARD_{name.upper()}" for name in Settings.model_fields}
    for name in SERVICES:
        env = COMPOSE["services"][name]["environment"]
        assert {k for k in env if k.startswith("MEDCARD_")} <= known
        assert env["MEDCARD_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert env["MEDCARD_MONGO_URL"] == "mongodb://mongo:27017/"


def test_the_dockerfile_runs_the_service_named_by_the_environment() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "uvicorn --factory services.${SERVICE}.app:create" in dockerfile
    assert (ROOT / "services" / "identity").is_dir()


def test_the_file_is_valid_under_the_compose_specification_docker_compose_uses() -> None:
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}"
              for e in Draft202012Validator(compose_schema()).iter_errors(COMPOSE)]
    assert errors == []
    broken = {**COMPOSE, "services": {**COMPOSE["services"], "console": {**COMPOSE["services"]["console"],
                                                                          "ports": "8105"}}}
    assert list(Draft202012Validator(compose_schema()).iter_errors(broken)), "the schema check can fail"


def cli_accepts(args: list[str]) -> dict[str, object]:
    """The options ``medcard`` parses from these arguments (as the container would run them)."""
    command = get_command(app)
    assert args[0] == "medcard"
    context = command.make_context("medcard", args[1:], resilient_parsing=False)
    sub = command.get_command(context, args[1])  # type: ignore[attr-defined]
    return sub.make_context(args[1], args[2:]).params  # type: ignore[no-any-return]


def test_the_console_serves_the_four_services_on_loopback() -> None:
    console = COMPOSE["services"]["console"]
    params = cli_accepts(console["command"])
    assert params["host"] == "0.0.0.0" and params["port"] == 8105
    assert {params[f"{s}_url"] for s in SERVICES} == {f"http://{s}:8000" for s in SERVICES}
    assert console["ports"] == [f"{PUBLISH}:8105:8105"]


def test_the_main_job_runs_on_demand_against_the_four_services_and_writes_its_reports_to_the_host() -> None:
    """`docker compose run --rm simulate --persons 1000 --months 3`: the real `medcard simulate`
    takes every option the service gives it, drives the four services where they listen, with
    the stack's keys (read-only), broker and namespace, and writes both reports into the
    host folder it mounts."""
    simulate = COMPOSE["services"]["simulate"]
    assert simulate["profiles"] == ["simulate"]  # not started by `docker compose up`
    assert simulate["build"] == "." and "command" not in simulate
    assert simulate["depends_on"] == {name: {"condition": "service_healthy"} for name in SERVICES}
    args = [*simulate["entrypoint"], "--persons", "1000", "--months", "3"]
    params = cli_accepts(args)
    assert (params["persons"], params["months"]) == (1000, 3)
    for name in SERVICES:
        svc = COMPOSE["services"][name]
        port = svc["environment"]["PORT"]
        assert f"http://127.0.0.1:{port}/ready" in " ".join(svc["healthcheck"]["test"])  # where it listens
        assert params[f"{name}_url"] == f"http://{name}:{port}"
    mounts = dict(volume.split(":", 1) for volume in simulate["volumes"])
    keys_volume = next(v for v in COMPOSE["services"]["identity"]["volumes"] if v.startswith("medcard-keys:"))
    keys_folder = keys_volume.split(":")[1]
    assert mounts["medcard-keys"] == f"{keys_folder}:ro"
    assert str(params["keys_file"]) == simulate["environment"]["MEDCARD_KEYS_FILE"] == f"{keys_folder}/keys.json"
    host_folder = next(source for source in mounts if source.startswith("./"))
    assert Path(params["report"]).parent == Path(mounts[host_folder])
    assert (ROOT / host_folder).resolve().name in (ROOT / ".gitignore").read_text()
    # The stack's broker (inside the network) and namespace, as every service reads them.
    assert simulate["environment"] == COMPOSE["services"]["topics"]["environment"]
    for name in SERVICES:
        env = COMPOSE["services"][name]["environment"]
        assert all(env[k] == v for k, v in simulate["environment"].items() if k.startswith("MEDCARD_"))
    # The broker and the namespace come from that environment (the options' variables).
    options = {p.name: p for p in get_command(app).get_command(None, "simulate").params}  # type: ignore[attr-defined]
    assert options["kafka"].envvar == "MEDCARD_KAFKA_BOOTSTRAP" and "kafka" not in " ".join(args)
    assert options["namespace"].envvar == "MEDCARD_NAMESPACE" and "--namespace" not in args
    assert simulate["environment"]["MEDCARD_KAFKA_BOOTSTRAP"] == "kafka:9092"
