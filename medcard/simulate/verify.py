"""After the streams have drained: read every topic from the start and the services'
projections, count what happened, and check the domain's invariants."""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.bounded import within
from shared.settings import Settings
from shared.topics import TOPICS

from .client import Ecosystem
from .driver import Holder, Ledger

KAFKA_SECONDS = 60.0
"""Longest the topic reader waits for Kafka to let it start, or to stop."""
READ_SECONDS = 600.0
"""Longest reading every topic back may take."""
SAMPLE_LIMIT = 5000
"""Above this many persons, projections are compared on a seeded sample of this size."""


@dataclass
class Stream:
    """The events of one run, as plain envelopes (attributes + data), in partition order."""

    by_topic: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    dead_letters: int = 0

    def events(self, service: str) -> list[dict[str, Any]]:
        return self.by_topic.get(service, [])

    def all(self) -> list[dict[str, Any]]:
        return [e for events in self.by_topic.values() for e in events]


async def read_stream(settings: Settings) -> Stream:
    """Every event of every topic (and the count of dead letters), read once from the start."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await within(consumer.start(), KAFKA_SECONDS, "the topic reader's start (Kafka)")
    stream = Stream()
    try:
        service_of: dict[str, str] = {}
        parts: list[TopicPartition] = []
        for service, topic in TOPICS.items():
            for name in (topic.name(settings.namespace), topic.dlq(settings.namespace)):
                service_of[name] = service
                parts += [TopicPartition(name, p) for p in range(topic.partitions)]
        for record in await _read_all(consumer, parts):
            if record.topic.endswith(".dlq"):
                stream.dead_letters += 1
                continue
            attrs = {k[3:]: v.decode() for k, v in (record.headers or ()) if k.startswith("ce_")}
            attrs["data"] = json.loads(record.value) if record.value else None
            attrs["name"] = attrs.get("type", "...").split(".")[-2]
            stream.by_topic.setdefault(service_of[record.topic], []).append(attrs)
    finally:
        await within(consumer.stop(), KAFKA_SECONDS, "the topic reader's stop (Kafka)")
    return stream


async def _read_all(consumer: AIOKafkaConsumer, parts: list[TopicPartition],
                    timeout: float = READ_SECONDS) -> list[Any]:
    """Every record of ``parts`` up to their end offsets at the call; TimeoutError naming the
    partitions still short of their end after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    ends = await consumer.end_offsets(parts)
    wanted = {tp: end for tp, end in ends.items() if end > 0}
    if not wanted:
        return []
    consumer.assign(list(wanted))
    for tp in wanted:
        consumer.seek(tp, 0)
    out: dict[TopicPartition, list[Any]] = {tp: [] for tp in wanted}
    done: set[TopicPartition] = set()
    while len(done) < len(wanted):
        if asyncio.get_running_loop().time() > deadline:
            short = [f"{tp.topic}/{tp.partition} at {out[tp][-1].offset + 1 if out[tp] else 0} of {end}"
                     for tp, end in wanted.items() if tp not in done]
            raise TimeoutError(f"reading the topics back: not at their end after {timeout:g} s: {short}")
        batch = await consumer.getmany(timeout_ms=1000, max_records=20_000)
        for tp, records in batch.items():
            out[tp].extend(records)
            if records and records[-1].offset + 1 >= wanted[tp]:
                done.add(tp)
    return [r for tp in wanted for r in out[tp]]


def _when(e: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(e["time"].replace("Z", "+00:00"))


def count(stream: Stream) -> dict[str, Any]:
    """The report's business figures, straight from the topics."""
    names = Counter(e["name"] for e in stream.all())
    bank, cards = stream.events("bank"), stream.events("cards")
    declined = Counter(e["data"]["reason_code"] for e in bank if e["name"] == "PurchaseDeclined")
    transfers = [e["data"]["amount_fen"] for e in bank if e["name"] == "MonthlyTransfer"]
    return {
        "events_published": sum(names.values()),
        "events_by_type": dict(sorted(names.items())),
        "purchases": {"authorised": names["PurchaseAuthorised"], "declined": dict(sorted(declined.items()))},
        "losses": dict(Counter(e["data"]["channel"] for e in cards if e["name"] == "CardLost")),
        "fraud_attempts_blocked": names["FraudAlertRaised"],
        "replacements": {
            "requested": names["ReplacementRequested"], "stamped": names["BankStamped"],
            "ready": names["ReplacementReady"],
            "collected": sum(1 for e in cards if e["name"] == "CardCancelled" and e["data"]["reason"] == "replaced"),
        },
        "monthly_transfers": {"count": len(transfers), "total_fen": sum(transfers)},
        "dead_letters": stream.dead_letters,
    }


def loss_window(stream: Stream) -> dict[str, Any]:
    """From each loss report to the bank blocking that card: latency, and purchases inside."""
    lost_at = {e["data"]["card_number"]: _when(e) for e in stream.events("cards") if e["name"] == "CardLost"}
    blocked_at: dict[str, datetime] = {}
    for e in stream.events("bank"):
        if e["name"] == "CardBlocked" and e["data"]["reason"] == "lost":
            blocked_at.setdefault(e["data"]["card_number"], _when(e))
    latencies = sorted((blocked_at[c] - t).total_seconds() * 1000 for c, t in lost_at.items() if c in blocked_at)
    inside = sum(1 for e in stream.events("bank") if e["name"] == "PurchaseAuthorised"
                 and (c := e["data"]["card_number"]) in lost_at and c in blocked_at
                 and lost_at[c] <= _when(e) < blocked_at[c])

    def pct(q: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2) if latencies else None

    return {"reports": len(lost_at), "applied_by_bank": len(latencies), "latency_ms_p50": pct(0.5),
            "latency_ms_p99": pct(0.99), "purchases_inside_window": inside}


def no_purchase_after_loss(stream: Stream) -> bool:
    """In the bank's own order of events per person, nothing is authorised on a card after
    the bank blocked it."""
    by_person: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in stream.events("bank"):
        by_person[e["partitionkey"]].append(e)
    for events in by_person.values():
        blocked: set[str] = set()
        for e in sorted(events, key=lambda e: int(e["sequence"])):
            if e["name"] == "CardBlocked":
                blocked.add(e["data"]["card_number"])
            elif e["name"] == "PurchaseAuthorised" and e["data"]["card_number"] in blocked:
                return False
    return True


async def bank_accounts(eco: Ecosystem, person_ids: list[str]) -> list[dict[str, Any]]:
    """The bank's account of each person (read once for the checks that need it)."""
    return await _gather(eco, "bank", [f"/v1/accounts/{p}" for p in person_ids])


async def money_conserved(eco: Ecosystem, stream: Stream, person_ids: list[str],
                          accounts: list[dict[str, Any]] | None = None) -> bool:
    """Ledger totals agree with the topics, and every account's balance is credits - debits >= 0."""
    bank = stream.events("bank")
    credits = sum(e["data"]["amount_fen"] for e in bank if e["name"] == "MonthlyTransfer")
    debits = sum(e["data"]["amount_fen"] for e in bank if e["name"] == "PurchaseAuthorised")
    totals = await eco.call("bank", "GET", "/v1/ledger/totals", who="operator")
    if (totals["credits_fen"], totals["debits_fen"], totals["balance_fen"]) != (credits, debits, credits - debits):
        return False
    per_person: dict[str, int] = defaultdict(int)
    for e in bank:
        if e["name"] == "MonthlyTransfer":
            per_person[e["data"]["person_id"]] += e["data"]["amount_fen"]
        elif e["name"] == "PurchaseAuthorised":
            per_person[e["data"]["person_id"]] -= e["data"]["amount_fen"]
    if accounts is None:
        accounts = await bank_accounts(eco, person_ids)
    return all(a["balance_fen"] == per_person[a["person_id"]] and a["balance_fen"] >= 0 for a in accounts)


async def cards_projection(eco: Ecosystem, person_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    answers = await _gather(eco, "cards", [f"/v1/persons/{p}/cards" for p in person_ids])
    return {p: a["data"] for p, a in zip(person_ids, answers, strict=True)}


def one_active_card_per_person(cards: dict[str, list[dict[str, Any]]]) -> bool:
    usable = ("pending_activation", "active")
    return all(sum(1 for c in held if c["state"] in usable) <= 1 and
               all(c["state"] == "cancelled" for c in held if c["replaced_by"]) for held in cards.values())


async def projection_disagreements(eco: Ecosystem, cards: dict[str, list[dict[str, Any]]],
                                   accounts: list[dict[str, Any]] | None = None,
                                   limit: int = 20) -> list[dict[str, Any]]:
    """Where cards, bank and notifications tell different states of a card (the first
    `limit` of them); empty when every projection agrees. ``accounts``: the bank's, in the
    order of ``cards`` (read here when not given)."""
    person_ids = list(cards)
    bank = accounts if accounts is not None else await bank_accounts(eco, person_ids)
    recipients = await _gather(eco, "notifications", [f"/v1/recipients/{p}" for p in person_ids])
    out: list[dict[str, Any]] = []
    for pid, account, recipient in zip(person_ids, bank, recipients, strict=True):
        bank_states, note_states = states_by_card(account["cards"]), states_by_card(recipient["cards"])
        for card in cards[pid]:
            number = card["card_number"]
            if not cards_agree(card["state"], bank_states.get(number), note_states.get(number)):
                out.append({"person_id": pid, "card_number": number, "cards": card["state"],
                            "bank": bank_states.get(number), "notifications": note_states.get(number)})
                if len(out) >= limit:
                    return out
    return out


def states_by_card(views: list[dict[str, Any]]) -> dict[str, str]:
    """A service's card views (``card_number`` and ``state``, the shared vocabulary) by number."""
    return {view["card_number"]: view["state"] for view in views}


def cards_agree(cards_state: str, bank_state: str | None, note_state: str | None) -> bool:
    """The cards service, the bank and notifications tell the same state of a card, exactly:
    every service says it in the shared vocabulary (``shared.card_state``), so nothing is
    mapped or forgiven; a service that does not know the card disagrees."""
    return cards_state == bank_state == note_state


def nothing_lost(stream: Stream, ledger: Ledger, pending_outbox: int) -> dict[str, bool]:
    """Every command a service accepted has its events on the topics; no outbox holds anything."""
    names: dict[str, set[str]] = defaultdict(set)
    for e in stream.all():
        d = e["data"] or {}
        for key in ("person_id", "card_number", "voucher", "receipt_number", "authorisation_id", "contribution_id"):
            if key in d:
                names[f"{e['name']}.{key}"].add(str(d[key]))
    return {
        "persons": ledger.persons <= names["PersonRegistered.person_id"],
        "cards": ledger.cards <= names["CardIssued.card_number"],
        "vouchers": ledger.vouchers <= names["CardLost.voucher"],
        "receipts": ledger.receipts <= names["ReplacementRequested.receipt_number"],
        "stamps": ledger.stamps <= names["BankStamped.receipt_number"],
        "authorisations": ledger.authorisations <= (names["PurchaseAuthorised.authorisation_id"]
                                                    | names["PurchaseDeclined.authorisation_id"]),
        "contributions": ledger.contributions <= names["ContributionPaid.contribution_id"],
        "outboxes_empty": pending_outbox == 0,
    }


async def _gather(eco: Ecosystem, service: str, paths: list[str]) -> list[Any]:
    sem = asyncio.Semaphore(32)

    async def one(path: str) -> Any:
        async with sem:
            return await eco.call(service, "GET", path, who="operator")

    return list(await asyncio.gather(*(one(p) for p in paths)))


def sample_people(holders: dict[int, Holder], seed: int) -> tuple[list[str], bool]:
    import random

    ids = [h.person_id for _, h in sorted(holders.items())]
    if len(ids) <= SAMPLE_LIMIT:
        return ids, False
    return random.Random(f"sample:{seed}").sample(ids, SAMPLE_LIMIT), True
