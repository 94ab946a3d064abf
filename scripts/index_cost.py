"""What a secondary index costs each write on the MongoDB-wire server (DocumentDB), measured.

DocumentDB keeps a collection in one PostgreSQL table; every secondary index is a RUM index
and every insert or update (a new row version) adds an entry to each index whose filter the
document matches. Two interleaved A/B measurements in one run, on a scratch database that is
dropped afterwards:

- keeping events: inserts keyed by a random id with an index of time (the webhook store of
  before) against inserts keyed by time then id with no other index (``event_log``);
- updating accounts: ``$inc`` by ``_id`` on documents of ~2.5 KB with and without a full index
  of one field (the bank's ``credit_due_from`` of before).

Usage (a running stack: ``medcard stack up``):
    .venv/bin/python scripts/index_cost.py [--url mongodb://127.0.0.1:27027/] [--rounds 200]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import MongoClient, UpdateOne

SCRATCH = "scratch_index_cost"


def interleaved(rounds: int, a: Callable[[], None], b: Callable[[], None]) -> tuple[list[float], list[float]]:
    """Seconds of each call of ``a`` and ``b``, alternating which goes first."""
    ta: list[float] = []
    tb: list[float] = []
    for r in range(rounds):
        for step, acc in ((a, ta), (b, tb)) if r % 2 == 0 else ((b, tb), (a, ta)):
            started = time.perf_counter()
            step()
            acc.append(time.perf_counter() - started)
    return ta, tb


def report(what: str, unit: str, per: int, ta: list[float], tb: list[float], a: str, b: str) -> None:
    ma, mb = statistics.median(ta), statistics.median(tb)
    print(f"{what}: {len(ta) * per} {unit} each; {a}: median {1000 * ma:.2f} ms per {per}; "
          f"{b}: median {1000 * mb:.2f} ms per {per}; {b} / {a} = {mb / ma:.2f}")


def kept_events(db: Any, rounds: int) -> None:
    indexed, keyed = db["indexed"], db["keyed"]
    indexed.create_index([("time", 1), ("received_at", 1)])
    envelope = {"specversion": "1.0", "type": "PurchaseAuthorised", "source": "/bank", "data": {"k": "v" * 500}}
    start, n = datetime(2026, 12, 7, tzinfo=UTC), 0

    def batch(by_time: bool) -> list[dict[str, Any]]:
        nonlocal n
        docs = []
        for _ in range(50):
            n += 1
            stamp = (start + timedelta(microseconds=137 * n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            event_id = str(uuid.uuid4())
            docs.append({"_id": f"{stamp}/{event_id}", "type": "T", "envelope": envelope} if by_time else
                        {"_id": event_id, "type": "T", "time": stamp, "received_at": datetime.now(UTC),
                         "envelope": envelope})
        return docs

    ta, tb = interleaved(rounds, lambda: indexed.insert_many(batch(False), ordered=False),
                         lambda: keyed.insert_many(batch(True), ordered=False))
    report("keeping events", "inserts", 50, ta, tb, "by id + an index of time", "keyed by time, no other index")


def account_updates(db: Any, rounds: int) -> None:
    indexed, plain = db["accounts_indexed"], db["accounts_plain"]
    indexed.create_index("credit_due_from")
    ledger = [{"reference": f"R{i}", "amount_fen": 1000 + i, "business_date": "2029-05-01", "merchant": "M001"}
              for i in range(20)]
    for coll in (indexed, plain):
        coll.insert_many([{"_id": f"P{i:06d}", "balance_fen": 0, "credit_due_from": "2029-05", "ledger": ledger}
                          for i in range(5000)])
    picks: list[int] = []

    def update(coll: Any) -> Callable[[], None]:
        def step() -> None:
            if coll is indexed:
                picks[:] = random.sample(range(5000), 20)
            coll.bulk_write([UpdateOne({"_id": f"P{i:06d}"}, {"$inc": {"balance_fen": -100}}) for i in picks],
                            ordered=False)
        return step

    picks[:] = random.sample(range(5000), 20)
    ta, tb = interleaved(rounds, update(indexed), update(plain))
    report("updating accounts", "updates", 20, ta, tb, "with a full index of one field", "without")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="mongodb://127.0.0.1:27027/")
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    client: MongoClient[dict[str, Any]] = MongoClient(args.url)
    try:
        client.drop_database(SCRATCH)
        kept_events(client[SCRATCH], args.rounds * 2)
        account_updates(client[SCRATCH], args.rounds)
    finally:
        client.drop_database(SCRATCH)
        client.close()


if __name__ == "__main__":
    main()
