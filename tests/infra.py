"""One provider of real infrastructure (Kafka + a MongoDB-wire server) for tests.

:func:`provide_infra` tries, in order:

1. ``env``: ``MEDCARD_KAFKA_BOOTSTRAP`` and ``MEDCARD_MONGO_URL`` are set, use them;
2. ``docker``: a Docker engine answers, start testcontainers (Kafka KRaft, ``mongo:8``);
3. ``local``: start a :class:`~medcard.stack.LocalStack` in ``.state/test-stack``
   with fresh data, on ports 29092/29093 (Kafka), 27037 (FerretDB) and 25037
   (its PostgreSQL).

``MEDCARD_TEST_INFRA=env|docker|local`` forces one way. Ports and state dir
of the local way can be changed with ``MEDCARD_TEST_KAFKA_PORT``,
``MEDCARD_TEST_KAFKA_CONTROLLER_PORT``, ``MEDCARD_TEST_MONGO_PORT``,
``MEDCARD_TEST_POSTGRES_PORT`` and ``MEDCARD_TEST_STATE_DIR``. If nothing can be started an :class:`InfraError`
is raised: tests needing infrastructure fail, they are never skipped.

The controls (stop/start Kafka or Mongo, for outage tests) are blocking calls
and exist only in ``local`` mode; call them from async tests with
``await asyncio.to_thread(infra.controls.stop_kafka)``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from medcard.stack import LocalStack

Mode = Literal["env", "docker", "local"]
REPO_ROOT = Path(__file__).resolve().parents[1]


class InfraError(RuntimeError):
    """No infrastructure could be provided, or a control is not available."""


class InfraControls:
    """Outage controls; this base class has none (env and docker modes)."""

    def __init__(self, mode: Mode) -> None:
        self.mode = mode

    def _unavailable(self) -> None:
        raise InfraError(
            f"infrastructure controls are only available in local mode (current mode: "
            f"{self.mode}); run with MEDCARD_TEST_INFRA=local"
        )

    def stop_kafka(self) -> None:
        self._unavailable()

    def start_kafka(self) -> None:
        self._unavailable()

    def stop_mongo(self) -> None:
        self._unavailable()

    def start_mongo(self) -> None:
        self._unavailable()


class LocalControls(InfraControls):
    """Stops and restarts the real local servers; start waits until ready."""

    def __init__(self, stack: LocalStack) -> None:
        super().__init__("local")
        self.stack = stack

    def stop_kafka(self) -> None:
        self.stack.stop_kafka()

    def start_kafka(self) -> None:
        self.stack.start_kafka()

    def stop_mongo(self) -> None:
        self.stack.stop_mongo()

    def start_mongo(self) -> None:
        self.stack.start_mongo()


@dataclass
class Infra:
    """Where the servers are, how they were provided, and how to disturb them."""

    kafka_bootstrap: str
    mongo_url: str
    mode: Mode
    controls: InfraControls
    _teardown: Callable[[], None] = field(default=lambda: None, repr=False)

    def teardown(self) -> None:
        """Stop whatever :func:`provide_infra` started (nothing in env mode)."""
        self._teardown()


def _env_infra() -> Infra | None:
    kafka, mongo = os.environ.get("MEDCARD_KAFKA_BOOTSTRAP"), os.environ.get("MEDCARD_MONGO_URL")
    if kafka and mongo:
        return Infra(kafka, mongo, "env", InfraControls("env"))
    return None


def _docker_infra() -> Infra:
    """Start Kafka and Mongo containers; raises if no Docker engine answers."""
    try:
        from testcontainers.community.kafka import KafkaContainer
        from testcontainers.community.mongodb import MongoDbContainer
    except ImportError:  # older testcontainers layout
        from testcontainers.kafka import KafkaContainer
        from testcontainers.mongodb import MongoDbContainer

    kafka = KafkaContainer().with_kraft()  # raises at once without a Docker engine
    mongo = MongoDbContainer("mongo:8")
    started: list[Any] = []
    try:
        for container in (kafka, mongo):
            container.start()
            started.append(container)
    except Exception:
        for container in started:
            container.stop()
        raise

    def stop() -> None:
        for container in started:
            container.stop()

    return Infra(
        kafka.get_bootstrap_server(), mongo.get_connection_url(), "docker",
        InfraControls("docker"), stop,
    )


def _local_infra() -> Infra:
    """A LocalStack with fresh data (its state dir is wiped first)."""
    env = os.environ.get
    state_dir = Path(env("MEDCARD_TEST_STATE_DIR") or REPO_ROOT / ".state" / "test-stack")
    stack = LocalStack(
        state_dir,
        kafka_port=int(env("MEDCARD_TEST_KAFKA_PORT") or 29092),
        kafka_controller_port=int(env("MEDCARD_TEST_KAFKA_CONTROLLER_PORT") or 29093),
        mongo_port=int(env("MEDCARD_TEST_MONGO_PORT") or 27037),
        postgres_port=int(env("MEDCARD_TEST_POSTGRES_PORT") or 0) or None,
    )
    stack.down()  # a previous session may have been killed before its teardown
    shutil.rmtree(stack.state_dir, ignore_errors=True)
    try:
        stack.up()
    except Exception:
        stack.down()
        raise
    return Infra(stack.kafka_bootstrap, stack.mongo_url, "local", LocalControls(stack), stack.down)


def provide_infra() -> Infra:
    """Provide running infrastructure (env, then Docker, then local servers)."""
    forced = os.environ.get("MEDCARD_TEST_INFRA", "auto")
    if forced not in ("auto", "env", "docker", "local"):
        raise InfraError(f"MEDCARD_TEST_INFRA must be auto, env, docker or local, not {forced!r}")
    failures: list[str] = []
    if forced in ("auto", "env"):
        infra = _env_infra()
        if infra:
            return infra
        failures.append("env: MEDCARD_KAFKA_BOOTSTRAP and MEDCARD_MONGO_URL are not both set")
    for mode, start in (("docker", _docker_infra), ("local", _local_infra)):
        if forced not in ("auto", mode):
            continue
        try:
            return start()
        except Exception as exc:
            failures.append(f"{mode}: {type(exc).__name__}: {exc}")
    raise InfraError("no test infrastructure could be provided:\n  " + "\n  ".join(failures))


def teardown(infra: Infra) -> None:
    """Same as ``infra.teardown()``."""
    infra.teardown()
