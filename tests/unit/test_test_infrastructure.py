"""How the tests get their servers: env URLs, then Docker, then the local stack; when none
can be had the tests fail with every reason, and in CI a skipped test is a failure."""

from __future__ import annotations

import pytest

from tests import infra
from tests.infra import Infra, InfraControls, InfraError, provide_infra


def fake(mode: str) -> Infra:
    return Infra(f"{mode}:9092", f"mongodb://{mode}/", mode, InfraControls(mode))  # type: ignore[arg-type]


def refuse(why: str):  # type: ignore[no-untyped-def]
    def start() -> Infra:
        raise RuntimeError(why)
    return start


@pytest.fixture
def nothing_set(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("MEDCARD_TEST_INFRA", "MEDCARD_KAFKA_BOOTSTRAP", "MEDCARD_MONGO_URL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_urls_from_the_environment_come_first(nothing_set: pytest.MonkeyPatch) -> None:
    nothing_set.setenv("MEDCARD_KAFKA_BOOTSTRAP", "k:1")
    nothing_set.setenv("MEDCARD_MONGO_URL", "mongodb://m:2/")
    nothing_set.setattr(infra, "_docker_infra", refuse("must not be tried"))
    got = provide_infra()
    assert (got.mode, got.kafka_bootstrap, got.mongo_url) == ("env", "k:1", "mongodb://m:2/")


def test_docker_then_the_local_stack(nothing_set: pytest.MonkeyPatch) -> None:
    nothing_set.setattr(infra, "_docker_infra", lambda: fake("docker"))
    nothing_set.setattr(infra, "_local_infra", refuse("must not be tried"))
    assert provide_infra().mode == "docker"
    nothing_set.setattr(infra, "_docker_infra", refuse("no Docker engine"))
    nothing_set.setattr(infra, "_local_infra", lambda: fake("local"))
    assert provide_infra().mode == "local"


def test_no_way_at_all_is_an_error_naming_every_reason(nothing_set: pytest.MonkeyPatch) -> None:
    nothing_set.setattr(infra, "_docker_infra", refuse("no Docker engine"))
    nothing_set.setattr(infra, "_local_infra", refuse("go is not on PATH"))
    with pytest.raises(InfraError) as caught:
        provide_infra()
    message = str(caught.value)
    assert "env: MEDCARD_KAFKA_BOOTSTRAP and MEDCARD_MONGO_URL are not both set" in message
    assert "docker: RuntimeError: no Docker engine" in message and "local: RuntimeError: go is not on PATH" in message


def test_a_forced_way_is_the_only_one_tried(nothing_set: pytest.MonkeyPatch) -> None:
    nothing_set.setenv("MEDCARD_TEST_INFRA", "local")
    nothing_set.setattr(infra, "_docker_infra", lambda: fake("docker"))
    nothing_set.setattr(infra, "_local_infra", refuse("port 29092 is taken"))
    with pytest.raises(InfraError, match="port 29092 is taken"):
        provide_infra()
    nothing_set.setenv("MEDCARD_TEST_INFRA", "podman")
    with pytest.raises(InfraError, match="must be auto, env, docker or local"):
        provide_infra()


@pytest.mark.parametrize(("ci", "outcome"), [("true", {"failed": 1}), ("", {"skipped": 1})])
def test_in_ci_a_skipped_test_fails(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                    ci: str, outcome: dict[str, int]) -> None:
    monkeypatch.setenv("CI", ci)
    pytester.makepyfile("""
        import pytest

        def test_needs_a_server():
            pytest.skip("the broker could not be started")
    """)
    result = pytester.runpytest_inprocess("-p", "tests.ci_policy", "-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(**outcome)
    if ci:
        result.stdout.fnmatch_lines(["*CI=true: a test may not be skipped in CI*the broker could not be started*"])
