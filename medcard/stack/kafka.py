"""A single-node Kafka (KRaft, broker + controller) run straight from Maven jars."""

from __future__ import annotations

import base64
import hashlib
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

from medcard.stack.process import HOST, ServerProcess, StackError, run_sync, tail

KAFKA_VERSION = "4.1.1"
SCALA_VERSION = "2.13"
LOG4J_VERSION = "2.24.3"
KAFKA_HEAP = "512m"

_POM = f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>medcard.stack</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{SCALA_VERSION}</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""


def kafka_home(cache_dir: Path) -> Path:
    """Where the Kafka jars of :data:`KAFKA_VERSION` live under ``cache_dir``."""
    return Path(cache_dir) / f"kafka-{KAFKA_VERSION}"


def ensure_kafka(cache_dir: Path) -> Path:
    """Return the directory of Kafka's jars, fetching them with Maven if absent.

    The pom is written into the cache; a marker holding its hash is written
    once every jar is in place, so an interrupted fetch is simply redone.
    """
    home = kafka_home(cache_dir)
    libs, marker = home / "libs", home / ".complete"
    digest = hashlib.sha256(_POM.encode()).hexdigest()
    if libs.is_dir() and marker.is_file() and marker.read_text().strip() == digest:
        return libs
    if shutil.which("mvn") is None:
        raise StackError("mvn (Apache Maven) is not on PATH; it is needed to fetch Kafka")
    home.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    (home / "pom.xml").write_text(_POM)
    staging = home / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    log = home / "mvn.log"
    with open(log, "wb") as out:
        result = subprocess.run(
            ["mvn", "-q", "-B", "-f", str(home / "pom.xml"),
             "dependency:copy-dependencies", f"-DoutputDirectory={staging}"],
            cwd=home, stdout=out, stderr=subprocess.STDOUT, check=False,
        )
    if result.returncode != 0 or not any(staging.glob("kafka_*.jar")):
        raise StackError(f"fetching Kafka {KAFKA_VERSION} with Maven failed:\n{tail(log)}")
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    marker.write_text(digest + "\n")
    return libs


def random_cluster_id() -> str:
    """A Kafka cluster id (what ``StorageTool random-uuid`` prints), made in Python."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


class KafkaServer(ServerProcess):
    """One KRaft node playing both broker and controller, bound to 127.0.0.1."""

    name = "kafka"

    def __init__(
        self, state_dir: Path, port: int = 19092, controller_port: int = 19093,
        libs_dir: Path | None = None,
    ) -> None:
        super().__init__(state_dir, port)
        self.controller_port = controller_port
        self.libs_dir = Path(libs_dir) if libs_dir else None

    def version(self) -> str:
        return KAFKA_VERSION

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def config_file(self) -> Path:
        return self.state_dir / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / "kafka.log"

    @property
    def ports(self) -> list[int]:
        return [self.port, self.controller_port]

    def prepare(self) -> None:
        """Write server.properties and the log4j2 config (every start: ports may change)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self._server_properties())
        (self.state_dir / "log4j2.properties").write_text(self._log4j_properties())

    def format(self) -> None:
        """Format the storage once; a formatted data dir (meta.properties) is kept."""
        if (self.data_dir / "meta.properties").exists():
            return
        self.prepare()
        result = subprocess.run(
            [*self._java(), "kafka.tools.StorageTool", "format",
             "-t", random_cluster_id(), "-c", str(self.config_file)],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")

    def command(self) -> list[str]:
        return [*self._java(), "kafka.Kafka", str(self.config_file)]

    def signature(self) -> list[str]:
        return ["kafka.Kafka", str(self.config_file)]

    def probe(self, timeout: float) -> bool:
        """A metadata request (list topics) through aiokafka's admin client."""
        try:  # cheap pre-check so aiokafka does not log connection errors
            socket.create_connection((HOST, self.port), timeout=timeout).close()
        except OSError:
            return False
        return run_sync(self._list_topics(timeout))

    async def _list_topics(self, timeout: float) -> bool:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap, request_timeout_ms=int(timeout * 1000)
        )
        try:
            await admin.start()
            await admin.list_topics()
            return True
        except Exception:
            return False
        finally:
            await admin.close()

    def _java(self) -> list[str]:
        if self.libs_dir is None:
            raise StackError("KafkaServer needs libs_dir (see ensure_kafka)")
        return [
            "java", f"-Xmx{KAFKA_HEAP}", "-Djava.awt.headless=true",
            "-cp", f"{self.libs_dir}/*",
            f"-Dlog4j2.configurationFile={self.state_dir / 'log4j2.properties'}",
        ]

    def _server_properties(self) -> str:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "4",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.retention.ms": "-1",
        }
        return "".join(f"{key}={value}\n" for key, value in props.items())

    def _log4j_properties(self) -> str:
        return "\n".join([
            "status = error",
            "appender.file.type = File",
            "appender.file.name = FILE",
            f"appender.file.fileName = {self.log_file}",
            "appender.file.layout.type = PatternLayout",
            "appender.file.layout.pattern = [%d] %p %m (%c)%n",
            "rootLogger.level = INFO",
            "rootLogger.appenderRef.file.ref = FILE",
            "logger.kafka.name = kafka",
            "logger.kafka.level = WARN",
            "logger.clients.name = org.apache.kafka",
            "logger.clients.level = WARN",
            "logger.started.name = kafka.server.KafkaRaftServer",
            "logger.started.level = INFO",
            "",
        ])
