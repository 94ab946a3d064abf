"""POS authorisation under concurrent load, against a bare FastAPI endpoint that does one
``find_one`` on the same database, in the same server set-up.

Method: ``concurrency`` clients (one asyncio task each, one keep-alive connection each)
send purchases of 1 fen on funded cards picked at random, with the right PIN, at a
designated hospital's terminal, back to back for ``duration`` seconds; requests/s counts
answers with status 200 (an approval or a decline: both are the bank's real work, a
write of the account and its event). The same clients then do the same against the
baseline process. Every card is swiped once before, so the argon2 check of its PIN is
already remembered by the bank (as it would be on a busy terminal).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx

from shared.ids import new_id

from .cardholders import MERCHANT, Cardholders, pos_body
from .common import Row, gather_limited, ms, percentile, rate, ratio

GOAL_SHARE = 0.40
GOAL_P99_MS = 100.0


async def warm_up(world: Cardholders) -> None:
    """One swipe per card: the bank verifies each right PIN with argon2 once."""
    headers = world.eco.auth(MERCHANT)

    async def one(h: Any) -> None:
        resp = await world.eco.request("bank", "POST", "/v1/pos/authorisations", json=pos_body(h), headers=headers)
        resp.raise_for_status()

    await gather_limited(world.pos, one, 16)


def renumbered(body: dict[str, Any]) -> dict[str, Any]:
    """The purchase as a new transaction (the same transaction id twice is a resend, answered
    from the first without the work)."""
    return {**body, "transaction_id": new_id("T")}


async def load(url: str, headers: dict[str, str], bodies: list[dict[str, Any]], *, concurrency: int,
               duration: float) -> dict[str, Any]:
    """``concurrency`` clients back to back for ``duration`` s; latencies of 200 answers."""
    rng = random.Random(7)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    codes: dict[str, int] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=5.0)
    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as client:
        # One request per connection first, so the measured part reuses open connections.
        await asyncio.gather(*(client.post("/v1/pos/authorisations", json=renumbered(bodies[0]), headers=headers)
                               for _ in range(concurrency)))
        cpu0 = time.process_time()
        started = time.perf_counter()
        deadline = started + duration

        async def worker() -> None:
            while time.perf_counter() < deadline:
                body = renumbered(rng.choice(bodies))
                t0 = time.perf_counter()
                try:
                    resp = await client.post("/v1/pos/authorisations", json=body, headers=headers)
                except httpx.HTTPError:
                    statuses[-1] = statuses.get(-1, 0) + 1
                    continue
                elapsed = time.perf_counter() - t0
                statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
                if resp.status_code == 200:
                    latencies.append(elapsed)
                    code = resp.json().get("response_code")
                    if code:
                        codes[code] = codes.get(code, 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu0
    return {"ok": len(latencies), "seconds": round(wall, 2), "rps": rate(len(latencies), wall),
            "p50_ms": ms(percentile(latencies, 50)), "p99_ms": ms(percentile(latencies, 99)),
            "statuses": {str(k): v for k, v in sorted(statuses.items())}, "response_codes": codes,
            "load_generator_cpu_share": round(cpu / wall, 2) if wall else None}


def rows(pos: dict[str, Any], base: dict[str, Any], *, concurrency: int, cards: int) -> list[Row]:
    detail = {"pos": pos, "baseline": base, "concurrency": concurrency, "cards": cards}
    share = ratio(pos["rps"], base["rps"])
    return [
        Row("pos_rps", "POS authorisation under load, requests/s", pos["rps"], "req/s", base["rps"],
            "bare FastAPI + one find_one, requests/s", ">= 40% of baseline", share is not None and share >= GOAL_SHARE,
            share, detail=detail),
        Row("pos_p99", "POS authorisation under load, p99", pos["p99_ms"], "ms", base["p99_ms"],
            "bare FastAPI + one find_one, p99", "<= 100 ms",
            pos["p99_ms"] is not None and pos["p99_ms"] <= GOAL_P99_MS, ratio(pos["p99_ms"], base["p99_ms"]),
            detail={"p50_ms": pos["p50_ms"], "baseline_p50_ms": base["p50_ms"]}),
    ]
