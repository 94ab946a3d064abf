"""Which database errors mean "the database is away": retried by consumers, answered 503
by the APIs, never dead-lettered or reported as a bug.

Besides losing the connection, a server that is stopping fails the operations in flight:
MongoDB with a shutdown or step-down code, FerretDB with its request context cancelled
(seen when FerretDB was stopped under a POS write: "[...] context canceled", code 1).
"""

from __future__ import annotations

from pymongo.errors import ConnectionFailure, ExecutionTimeout, OperationFailure, WriteError

STOPPING_CODES = frozenset({
    91,     # ShutdownInProgress
    189,    # PrimarySteppedDown
    10107,  # NotWritablePrimary
    11600,  # InterruptedAtShutdown
    11602,  # InterruptedDueToReplStateChange
    13435,  # NotPrimaryNoSecondaryOk
    13436,  # NotPrimaryOrSecondary
})
CANCELLED = "context canceled"
"""FerretDB's words for an operation cut short by its own shutdown."""


def database_away(err: BaseException) -> bool:
    """True when ``err`` says the database could not be reached or is stopping (try again
    later), False for what a retry cannot mend (a refused write, a bad query, a bug)."""
    if isinstance(err, (ConnectionFailure, ExecutionTimeout)):
        return True
    if isinstance(err, OperationFailure) and not isinstance(err, WriteError):
        return err.code in STOPPING_CODES or CANCELLED in str(err)
    return False
