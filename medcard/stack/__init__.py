"""Local stack of real servers for development and tests: a Kafka KRaft node, and
FerretDB 2 (the MongoDB wire protocol) on PostgreSQL 15 with the DocumentDB extension.

Mounted on the command line as ``medcard stack ...`` (see :mod:`medcard.stack.cli`).
"""

from medcard.stack.ferretdb import FERRETDB_VERSION, FerretServer, ensure_ferretdb
from medcard.stack.kafka import KAFKA_VERSION, KafkaServer, ensure_kafka
from medcard.stack.local import LocalStack, check_tools, default_cache_dir, default_state_dir
from medcard.stack.postgres import PostgresServer
from medcard.stack.process import ServerProcess, StackError, port_is_free

__all__ = [
    "FERRETDB_VERSION",
    "KAFKA_VERSION",
    "FerretServer",
    "KafkaServer",
    "LocalStack",
    "PostgresServer",
    "ServerProcess",
    "StackError",
    "check_tools",
    "default_cache_dir",
    "default_state_dir",
    "ensure_ferretdb",
    "ensure_kafka",
    "port_is_free",
]
