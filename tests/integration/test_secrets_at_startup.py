"""Each service, started as operators start it (``uvicorn --factory``), refuses to start in
production with a missing, short or low-entropy key and says which setting to fix; given
proper keys the same command serves. In development, given no key, the four services and the
command line share keys generated once for the installation. No broker or database is
needed to see either."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from shared.auth import issue_token, verify_token
from shared.settings import SECRET_SETTINGS, Settings
from tests.infra import REPO_ROOT
from tests.integration.ops_support import free_port

SERVICES = ("identity", "cards", "bank", "notifications")
PORTS = {service: free_port() for service in SERVICES}
"""Free ports of this run: two runs on one machine never meet."""
KEYS = {f"MEDCARD_{name.upper()}": secrets.token_urlsafe(32) for name in SECRET_SETTINGS}


def environment(**extra: str) -> dict[str, str]:
    """The process environment without any MEDCARD_ setting of ours, in production, with
    servers that do not exist (start-up must not depend on them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDCARD_")}
    return {**env, "MEDCARD_ENVIRONMENT": "production", "MEDCARD_KAFKA_BOOTSTRAP": "127.0.0.1:9",
            "MEDCARD_MONGO_URL": "mongodb://127.0.0.1:9/", "MEDCARD_IDENTITY_BOOTSTRAP_OPERATOR_PASSWORD":
            "an-operator-password-of-its-own", **extra}


def start(service: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", f"services.{service}.app:create", "--host", "127.0.0.1",
         "--port", str(PORTS[service])], cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def healthy(service: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORTS[service]}/health", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


WEAK = {"defaults": {}, "short jwt secret": {**KEYS, "MEDCARD_JWT_SECRET": "too-short-secret"},
        "one-letter jwt secret": {**KEYS, "MEDCARD_JWT_SECRET": "j" * 40}}


@pytest.mark.parametrize("weak", list(WEAK))
def test_every_service_refuses_to_start_in_production_with_weak_keys(weak: str, tmp_path: Path) -> None:
    extra = WEAK[weak]
    procs = {s: start(s, environment(**extra), tmp_path / f"{s}.log") for s in SERVICES}
    try:
        codes = {s: p.wait(120) for s, p in procs.items()}
    finally:
        for p in procs.values():
            stop(p)
    logs = {s: (tmp_path / f"{s}.log").read_text(errors="replace") for s in SERVICES}
    assert all(code != 0 for code in codes.values()), codes
    for service, text in logs.items():
        assert "MEDCARD_JWT_SECRET" in text and "must be set" in text, f"{service}: {text[-800:]}"
        assert "refusing to start" in text and "Traceback" not in text, f"{service}: {text[-800:]}"
        assert "too-short-secret" not in text and "j" * 40 not in text, f"{service} printed the secret it refused"
        if weak == "defaults":
            assert "MEDCARD_WEBHOOK_SECRET_KEY" in text and "MEDCARD_ID_DIGEST_KEY" in text


def test_the_same_command_serves_with_three_strong_keys(tmp_path: Path) -> None:
    procs = {s: start(s, environment(**KEYS), tmp_path / f"{s}.log") for s in SERVICES}
    try:
        deadline = time.monotonic() + 120
        while not all(healthy(s) for s in SERVICES):
            exited = {s: p.returncode for s, p in procs.items() if p.poll() is not None}
            assert not exited, {s: (tmp_path / f"{s}.log").read_text()[-800:] for s in exited}
            assert time.monotonic() < deadline, "the services did not answer /health in 120 s"
            time.sleep(0.2)
    finally:
        for p in procs.values():
            stop(p)


def test_development_services_share_keys_generated_once_for_the_installation(tmp_path: Path) -> None:
    """Four services started together in development with no key set: one key file, mode
    0600, random keys that none of the source's strings is; a token the command line's
    settings sign is one every service accepts, and a restart keeps the keys."""
    keys_file = tmp_path / "state" / "keys.json"
    env = {**environment(), "MEDCARD_ENVIRONMENT": "development", "MEDCARD_KEYS_FILE": str(keys_file)}
    del env["MEDCARD_IDENTITY_BOOTSTRAP_OPERATOR_PASSWORD"]
    for attempt in ("first start", "restart"):
        procs = {s: start(s, env, tmp_path / f"{s}-{attempt}.log") for s in SERVICES}
        try:
            deadline = time.monotonic() + 120
            while not all(healthy(s) for s in SERVICES):
                exited = {s: p.returncode for s, p in procs.items() if p.poll() is not None}
                assert not exited, {s: (tmp_path / f"{s}-{attempt}.log").read_text()[-800:] for s in exited}
                assert time.monotonic() < deadline, "the services did not answer /health in 120 s"
                time.sleep(0.2)
        finally:
            for p in procs.values():
                stop(p)
        keys = json.loads(keys_file.read_text())
        if attempt == "first start":
            generated = keys
        assert keys == generated
    assert keys_file.stat().st_mode & 0o777 == 0o600
    assert set(generated) == {*SECRET_SETTINGS, "identity_bootstrap_operator_password"}
    assert len(set(generated.values())) == len(generated)
    # The project's own source folders (not .state/, where a running Kafka deletes folders under a walk).
    source = "\n".join(p.read_text() for folder in ("services", "shared", "medcard", "scripts", "examples", "tests")
                       for p in (REPO_ROOT / folder).rglob("*.py"))
    assert not any(value in source for value in generated.values())
    cli = Settings(environment="development", keys_file=keys_file)
    token = issue_token(cli, sub="operator", role="operator")
    assert verify_token(Settings(environment="development", keys_file=keys_file), token).role == "operator"
