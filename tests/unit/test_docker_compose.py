"""docker-compose.yml cannot run here (no Docker engine), so it is checked as data:
services, images, ports, health checks, start order, and the settings the services read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from medcard.ports import SERVICE_PORTS
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = ("identity", "cards", "bank", "notifications")


def test_the_stack_has_kafka_mongo_a_topic_step_and_the_four_services() -> None:
    assert set(COMPOSE["services"]) == {"kafka", "mongo", "topics", *SERVICES}
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


def test_host_ports_match_the_local_stack() -> None:
    for name in SERVICES:
        assert COMPOSE["services"][name]["ports"] == [f"{SERVICE_PORTS[name]}:8000"]
    assert COMPOSE["services"]["kafka"]["ports"] == ["19092:19092"]
    assert COMPOSE["services"]["mongo"]["ports"] == ["27027:27017"]


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
