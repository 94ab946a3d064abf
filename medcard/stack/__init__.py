"""Local stack of real servers (Kafka KRaft node + FerretDB) for development and tests.

Mounted on the command line as ``medcard stack ...`` (see :mod:`medcard.stack.cli`).
"""

from medcard.stack.ferretdb import FERRETDB_VERSION, FerretServer, ensure_ferretdb
from medcard.stack.kafka import KAFKA_VERSION, KafkaServer, ensure_kafka
from medcard.stack.local import LocalStack, check_tools, default_cache_dir, default_state_dir
from medcard.stack.process import ServerProcess, StackError, port_is_free

__all__ = [
    "FERRETDB_VERSION",
    "KAFKA_VERSION",
    "FerretServer",
    "KafkaServer",
    "LocalStack",
    "ServerProcess",
    "StackError",
    "check_tools",
    "default_cache_dir",
    "default_state_dir",
    "ensure_ferretdb",
    "ensure_kafka",
    "port_is_free",
]
