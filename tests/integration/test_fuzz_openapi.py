"""Property-based fuzzing of every service's OpenAPI with schemathesis, against the four
services running as real processes (uvicorn) on the real Kafka broker and MongoDB-wire
server, each on a namespace of its own (so nothing but the fuzzed requests writes to its
database).

Every documented operation is called with generated requests, valid and invalid
(schemathesis "all" mode), carrying a token of a role the operation admits. For every
answer:

- no 5xx;
- an error (4xx) has the shared body ``{"error", "detail"}``;
- an error changed nothing: the service's database is the same before and after (the
  relay's bookkeeping of published events aside). The one documented exception is the
  counters of failed attempts that lockouts are made of: a refused login counts towards
  the account's lock, a wrong old PIN towards the card password's lock; and the rate
  limits count every request of their routes, refused ones too (``rate_limits``).

``MEDCARD_FUZZ_EXAMPLES`` (default 10) sets the examples per operation and
``MEDCARD_FUZZ_SEED`` a seed (default: derandomized, the same examples every run).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from pymongo import MongoClient

from medcard.services import ServiceProcess
from services.bank.app import create as create_bank
from services.cards.app import create as create_cards
from services.identity.app import create as create_identity
from services.notifications.app import create as create_notifications
from shared.auth import Role, issue_token
from shared.settings import Settings
from tests.integration.ops_support import free_port

from .security_support import SURFACE, Guard

pytestmark = pytest.mark.infra

CREATE: dict[str, Callable[[Settings], FastAPI]] = {
    "identity": create_identity, "cards": create_cards, "bank": create_bank, "notifications": create_notifications,
}
PORTS = {name: free_port() for name in ("identity", "cards", "bank", "notifications")}
"""Free ports of this run: two runs on one machine never meet."""
EXAMPLES = int(os.environ.get("MEDCARD_FUZZ_EXAMPLES", "10"))
SEED = os.environ.get("MEDCARD_FUZZ_SEED")
KEY = secrets.token_urlsafe(40)
"""The services' JWT key for this run (the tests issue the tokens)."""
TOKENS = Settings(environment="test", jwt_secret=KEY)
PREFERENCE: tuple[Role, ...] = ("operator", "teller", "clerk", "merchant", "cardholder")
COUNTERS = ("failures", "locked_until", "pin_failures", "pin_locked", "account_code", "rev", "version")
"""What a refused login, a wrong old PIN or a wrong one-time code may change: the lockout
counters, the code's tries (the last one voids it), and the document's revision and event
count, for the lock event."""
LOCKOUT_COUNTED: frozenset[tuple[str, str]] = frozenset({
    ("POST", "/v1/login"), ("POST", "/v1/staff/login"), ("POST", "/v1/cards/{card_number}/password/change"),
    ("POST", "/v1/accounts"),
})
REQUEST_COUNTERS = ("rate_limits",)
"""Collections that count requests (refused ones too) for the rate limits: not data."""
RELAY_FIELDS = ("outbox", "pending", "outbox_done")
"""The relay clears these after Kafka acknowledged the events, asynchronously."""

SPECS = {name: create(Settings(environment="test", namespace="fuzzdoc")).openapi() for name, create in CREATE.items()}
CLOCK_DAYS = 62
SPECS["identity"]["components"]["schemas"]["ClockAdvance"]["properties"]["days"]["anyOf"][0]["maximum"] = CLOCK_DAYS
"""The clock is fuzzed up to two months a call: the API allows 3,660 days, and a ten-year
advance publishes ~3,800 events in one write (tens of seconds here). The limit itself is
checked in tests/unit/test_identity_clock.py."""
CONFIG = schemathesis.Config.from_dict({"generation": {
    "mode": "all", "max-examples": EXAMPLES, "no-shrink": True, "with-security-parameters": False}})
SCHEMAS = {name: schemathesis.openapi.from_dict(spec, config=CONFIG) for name, spec in SPECS.items()}


def strip(doc: Any, counters: bool) -> Any:
    """A document without the relay's fields (and, if asked, without the lockout counters)."""
    if isinstance(doc, dict):
        drop = RELAY_FIELDS + (COUNTERS if counters else ())
        return {k: strip(v, counters) for k, v in doc.items() if k not in drop}
    if isinstance(doc, list):
        return [strip(v, counters) for v in doc]
    return doc


@dataclass
class Target:
    """One service process under fuzzing, and what its database held after the last error."""

    name: str
    url: str
    database: str
    mongo: MongoClient[dict[str, Any]]
    last: dict[str, dict[str, Any]] | None = None
    calls: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        t = time.perf_counter()
        db = self.mongo[self.database]
        hidden = dict.fromkeys(RELAY_FIELDS, 0)  # the outbox can be large (a clock advance of years)
        out = {name: {str(d["_id"]): d for d in db[name].find({}, hidden)} for name in sorted(db.list_collection_names())
               if name not in REQUEST_COUNTERS}
        self.seconds["snapshot"] = self.seconds.get("snapshot", 0) + time.perf_counter() - t
        return out

    def changes(self, before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]],
                counters: bool) -> list[str]:
        found = []
        for coll in sorted(set(before) | set(after)):
            old, new = before.get(coll, {}), after.get(coll, {})
            for key in sorted(set(old) | set(new)):
                if key not in old or key not in new:
                    found.append(f"{coll}/{key} {'added' if key in new else 'removed'}")
                elif (a := strip(old[key], counters)) != (b := strip(new[key], counters)):
                    fields = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                    found.append(f"{coll}/{key} changed: {', '.join(fields)}")
        return found


def token_for(settings: Settings, guard: Guard | None) -> dict[str, str]:
    """A token of a role the operation admits (none for a public one)."""
    if guard is None:
        return {}
    admitted = set(guard.roles) | ({"cardholder"} if guard.owner else set())
    role = next(r for r in PREFERENCE if r in admitted)
    token = issue_token(settings, sub="u-fuzz", role=role, person_id="P-fuzz" if role == "cardholder" else None)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def fleet(infra: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Target]]:
    """The four services as processes, each on a fresh namespace of its own."""
    run = secrets.token_hex(3)
    state = Path(tmp_path_factory.mktemp("fuzz"))
    mongo: MongoClient[dict[str, Any]] = MongoClient(infra.mongo_url, tz_aware=True)
    procs, targets = [], {}
    for name, port in PORTS.items():
        namespace = f"fz{run}{name[:2]}"
        env = {"MEDCARD_ENVIRONMENT": "test", "MEDCARD_NAMESPACE": namespace, "MEDCARD_JWT_SECRET": KEY,
               "MEDCARD_KAFKA_BOOTSTRAP": infra.kafka_bootstrap, "MEDCARD_MONGO_URL": infra.mongo_url,
               "MEDCARD_LOG_LEVEL": "WARNING", "MEDCARD_ARGON2_MEMORY_KIB": "1024", "MEDCARD_ARGON2_TIME_COST": "1"}
        procs.append(ServiceProcess(state, name, port, env))
        targets[name] = Target(name, procs[-1].url, f"{namespace}_{name}", mongo)
    try:
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.wait_ready(120)
        yield targets
    finally:
        for proc in procs:
            proc.stop(20)
        mongo.close()
    for t in targets.values():  # shown with -s: what was tried, and where the time went
        slowest = sorted(((round(v, 1), k) for k, v in t.seconds.items()), reverse=True)[:3]
        print(f"\nfuzzed {t.name}: {t.calls} calls, answers {dict(sorted(t.statuses.items()))}, slowest {slowest}")


def fuzz(service: str, case: schemathesis.Case, fleet: dict[str, Target]) -> None:
    target = fleet[service]
    op = (case.method.upper(), case.path)
    before = target.last if target.last is not None else target.snapshot()
    t = time.perf_counter()
    response = case.call(base_url=target.url, headers=token_for(TOKENS, SURFACE[service].get(op)), timeout=60)
    key = f"{op[0]} {op[1]}"
    target.seconds[key] = target.seconds.get(key, 0) + time.perf_counter() - t
    target.calls += 1
    target.statuses[response.status_code] = target.statuses.get(response.status_code, 0) + 1
    repro = f"{case.as_curl_command(headers=dict(response.request.headers))}\n-> {response.status_code}"
    assert response.status_code < 500, f"{repro} {response.content[:400]!r}"
    if response.status_code < 400:
        target.last = None  # it may have changed things: take a fresh snapshot before the next call
        return
    body = response.json()
    assert set(body) == {"error", "detail"} and body["detail"], f"{repro}: error body {body!r}"
    after = target.snapshot()
    changed = target.changes(before, after, counters=op in LOCKOUT_COUNTED)
    assert changed == [], f"{repro}: an error answer changed {changed}"
    target.last = after


def fuzz_test(service: str) -> Callable[..., None]:
    settings = hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=SEED is None,
                                   suppress_health_check=list(hypothesis.HealthCheck), print_blob=True)

    @SCHEMAS[service].parametrize()
    @settings
    def test(case: schemathesis.Case, fleet: dict[str, Target]) -> None:
        fuzz(service, case, fleet)

    if SEED is not None:
        test = hypothesis.seed(int(SEED))(test)
    test.__name__ = f"test_fuzz_{service}"
    return test


test_fuzz_identity = fuzz_test("identity")
test_fuzz_cards = fuzz_test("cards")
test_fuzz_bank = fuzz_test("bank")
test_fuzz_notifications = fuzz_test("notifications")
