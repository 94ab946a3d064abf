"""Which database errors are an outage (retry, 503) and which are not (a refusal, a bug)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
    WriteError,
)

from shared.database import database_away
from shared.service import ServiceRuntime, create_app
from shared.settings import Settings

# What FerretDB 2 answered here, PostgreSQL behind it stopped under 8 writers, then down:
POSTGRES_STOPPING = OperationFailure("terminating connection due to administrator command", code=1)
POSTGRES_DOWN = OperationFailure(
    "[msg_update.go:55 handler.(*Handler).msgUpdate] [pool.go:97 documentdb.(*Pool).WithConn] "
    "[pool.go:86 documentdb.(*Pool).Acquire] failed to connect to `user=postgres database=postgres`: "
    "127.0.0.1:25097 (127.0.0.1): dial error: dial tcp 127.0.0.1:25097: connect: connection refused", code=1)
FERRETDB_STOPPING = OperationFailure("[msg_update.go:55 handler.(*Handler).msgUpdate] context canceled", code=1)


@pytest.mark.parametrize("err", [
    ServerSelectionTimeoutError("127.0.0.1:27037: [Errno 111] Connect call failed"),
    AutoReconnect("connection closed"), NetworkTimeout("timed out"), ExecutionTimeout("operation exceeded time limit"),
    FERRETDB_STOPPING, POSTGRES_STOPPING, POSTGRES_DOWN,
    OperationFailure("FATAL: the database system is starting up", code=1),
    OperationFailure("The server is in quiesce mode and will shut down", code=91),
    OperationFailure("interrupted at shutdown", code=11600),
])
def test_an_unreachable_or_stopping_database_is_away(err: Exception) -> None:
    assert database_away(err)


@pytest.mark.parametrize("err", [
    DuplicateKeyError("E11000 duplicate key error", code=11000),
    WriteError("context canceled", code=1),  # a refused write stays refused
    BulkWriteError({"writeErrors": [{"code": 11000}]}),
    OperationFailure("unknown operator: $foo", code=2),
    OperationFailure("failed to connect to the card: no such card", code=2),  # the words, another code
    ValueError("not a database error"),
])
def test_a_refusal_or_a_bug_is_not_an_outage(err: Exception) -> None:
    assert not database_away(err)


async def test_an_api_answers_503_while_the_database_is_away_and_500_for_a_bug() -> None:
    router = APIRouter()
    failures = {"stopping": FERRETDB_STOPPING, "gone": ServerSelectionTimeoutError("no server"),
                "bug": OperationFailure("unknown operator: $foo", code=2)}

    @router.get("/fail/{kind}")
    async def fail(kind: str) -> None:
        raise failures[kind]

    app = create_app(ServiceRuntime("errors", Settings(environment="test")), title="t", description="d",
                     routers=[router])  # lifespan not run: no I/O
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://errors") as client:
        stopping, gone, bug = [await client.get(f"/fail/{kind}") for kind in ("stopping", "gone", "bug")]
    assert (stopping.status_code, stopping.json()["detail"]) == (
        503, "database connection lost; a change in flight may or may not have been made")
    assert (gone.status_code, gone.json()["detail"]) == (503, "database unavailable; nothing was changed")
    assert bug.status_code == 500
