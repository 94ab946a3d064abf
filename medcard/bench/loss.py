"""Loss-to-block latency: from sending the loss report to the moment the card is known to
be stopped, and the promise behind it: after a "blocked" answer no purchase is approved,
against a raw Kafka round trip.

Method: a teller reports the card lost at the bank counter (``POST
/v1/loss-reports/bank`` on cards), sent at ``t_sent``; its answer arrives at ``t0``. The
cards service answers once the bank's CardBlocked has come back (``"blocked": true``), or
after its bounded wait with ``"blocked": false, "block": "pending"``. At once a thief who
knows the PIN tries the card at a designated hospital's POS (``POST
/v1/pos/authorisations`` on the bank, 1 fen; the card is funded, so only the block refuses
it), and again and again, 2 ms apart, until the answer "41" arrives at ``t1``. The figure
is the time from ``t_sent`` to the block as the reporter learns it: ``t0`` for a "blocked"
answer, ``t1`` for a pending one (an upper bound, too late by at most one probe; the probe
round trip is reported). Counted beside it: the answers "blocked" and "pending", and the
purchases approved right after each kind of answer (after "blocked" it must be none).

Supporting figure from the events: the bank's CardBlocked ``time`` minus ``t0`` (same
machine clock; negative when the bank blocked before the answer) and CardBlocked minus
CardLost (both stamped by the services), which is how the simulation measures the loss
window.

Baseline: one small message produced (acks=all) and consumed by raw aiokafka on the same
broker, one after the other, ``max(reports, 200)`` times.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from medcard.simulate.client import Ecosystem
from shared.settings import Settings
from shared.topics import topic_for_service

from .cardholders import MERCHANT, Cardholders, Holder, pos_body
from .common import Row, ms, new_topic, percentile, ratio, read_topic

PROBE_GAP = 0.002
GIVE_UP_SECONDS = 60.0
GOAL_MS = 50.0


async def measure(world: Cardholders, settings: Settings, *, parallel: int = 1) -> dict[str, Any]:
    """Report every loss card lost, ``parallel`` at a time; latencies and probe figures."""
    results: list[dict[str, Any]] = []
    queue = list(world.loss)

    async def worker() -> None:
        while queue:
            results.append(await _one(world.eco, queue.pop()))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, parallel))))
    wall = time.perf_counter() - started
    return {"results": results, "wall_seconds": round(wall, 2)}


async def _one(eco: Ecosystem, h: Holder) -> dict[str, Any]:
    headers = eco.auth(MERCHANT)
    sent = time.perf_counter()
    report = await eco.call("cards", "POST", "/v1/loss-reports/bank", who="teller", json={
        "card_number": h.card, "id_number": h.id_number, "letter_reference": f"LB-{h.index:07d}"})
    t0, wall0 = time.perf_counter(), time.time()
    blocked = bool(report["blocked"])
    body = pos_body(h)
    probes, first = 0, None
    probe_times: list[float] = []
    codes: set[str] = set()
    while True:
        probe_sent = time.perf_counter()
        resp = await eco.request("bank", "POST", "/v1/pos/authorisations", json=body, headers=headers)
        now = time.perf_counter()
        probes += 1
        probe_times.append(now - probe_sent)
        code = resp.json().get("response_code") if resp.status_code == 200 else str(resp.status_code)
        first = first or code
        if code == "41" or now - t0 > GIVE_UP_SECONDS:
            stopped = (t0 if blocked else now) if code == "41" else None
            return {"card": h.card, "latency": None if stopped is None else stopped - sent,
                    "report_seconds": t0 - sent, "blocked_answer": blocked, "first_after_answer": first,
                    "answered_wall": wall0, "probes": probes, "probe_seconds": probe_times,
                    "codes_before": sorted(codes)}
        codes.add(code)
        await asyncio.sleep(PROBE_GAP)


async def events_view(settings: Settings, measured: list[dict[str, Any]]) -> dict[str, Any]:
    """CardBlocked minus the HTTP answer (negative: blocked before it), and CardBlocked minus
    CardLost, from the topics."""
    blocked = {e["subject"]: _time(e["time"]) for e in await read_topic(
        settings, topic_for_service("bank", settings.namespace), types=("CardBlocked",))}
    lost = {e["subject"]: _time(e["time"]) for e in await read_topic(
        settings, topic_for_service("cards", settings.namespace), types=("CardLost",))}
    after_answer = [blocked[m["card"]] - m["answered_wall"] for m in measured if m["card"] in blocked]
    lost_to_blocked = [blocked[c] - lost[c] for c in blocked if c in lost]
    return {
        "cardblocked_after_answer_ms_p50": ms(percentile(after_answer, 50)),
        "cardblocked_after_answer_ms_p99": ms(percentile(after_answer, 99)),
        "cardlost_to_cardblocked_ms_p50": ms(percentile(lost_to_blocked, 50)),
        "cardlost_to_cardblocked_ms_p99": ms(percentile(lost_to_blocked, 99)),
        "cards_blocked_seen": len(blocked),
    }


def _time(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


async def kafka_round_trips(settings: Settings, samples: int) -> list[float]:
    """Raw aiokafka: produce one small message (acks=all), consume it; one at a time."""
    topic = f"{settings.namespace}.bench-latency"
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=0)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        await new_topic(settings, topic, 1, producer)
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        await consumer.position(tp)
        latencies = []
        payload = b'{"card_number":"6216610000000000000","reason":"lost"}'
        for i in range(samples + 20):
            t0 = time.perf_counter()
            await producer.send_and_wait(topic, payload, key=b"k")
            await consumer.getone(tp)
            if i >= 20:  # the first round trips warm connections and fetch sessions up
                latencies.append(time.perf_counter() - t0)
        return latencies
    finally:
        await producer.stop()
        await consumer.stop()


def rows(measured: dict[str, Any], baseline: list[float], events: dict[str, Any],
         where: dict[str, Any] | None = None) -> list[Row]:
    done = [r for r in measured["results"] if r["latency"] is not None]
    lat = [r["latency"] for r in done]
    probe_seconds = [s for r in measured["results"] for s in r["probe_seconds"]]
    p50, p99 = ms(percentile(lat, 50)), ms(percentile(lat, 99))
    b50, b99 = ms(percentile(baseline, 50)), ms(percentile(baseline, 99))
    results = measured["results"]
    blocked = [r for r in results if r["blocked_answer"]]
    pending = [r for r in results if not r["blocked_answer"]]
    detail = {
        "reports": len(results), "refused_41": len(done),
        "never_refused": len(results) - len(done),
        "answered_blocked": len(blocked), "answered_pending": len(pending),
        "approved_after_blocked": sum(r["first_after_answer"] == "00" for r in blocked),
        "approved_after_pending": sum(r["first_after_answer"] == "00" for r in pending),
        "report_round_trip_ms_p50": ms(percentile([r["report_seconds"] for r in results], 50)),
        "report_round_trip_ms_p99": ms(percentile([r["report_seconds"] for r in results], 99)),
        "probe_round_trip_ms_p50": ms(percentile(probe_seconds, 50)),
        "probe_round_trip_ms_p99": ms(percentile(probe_seconds, 99)),
        "probes_per_report_p50": percentile([r["probes"] for r in measured["results"]], 50),
        "answers_before_refusal": sorted({c for r in measured["results"] for c in r["codes_before"]}),
        "wall_seconds": measured["wall_seconds"],
        "baseline_samples": len(baseline),
        **events,
        "where_the_time_goes": where or {},
    }
    met = (p99 is not None and b99 is not None and p99 <= 3 * b99 and p99 < GOAL_MS and not detail["never_refused"]
           and not detail["approved_after_blocked"])
    return [
        Row("loss_to_block_p50", "loss-to-block latency p50", p50, "ms", b50,
            "raw aiokafka produce->consume, p50", "report it", True, ratio(p50, b50),
            detail={"see": "loss_to_block_p99"}),
        Row("loss_to_block_p99", "loss-to-block latency p99", p99, "ms", b99,
            "raw aiokafka produce->consume, p99", "<= 3x baseline p99 and < 50 ms; none approved after 'blocked'",
            bool(met), ratio(p99, b99),
            detail=detail),
    ]
