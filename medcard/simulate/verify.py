"""After the streams have drained: read every topic from the start and the services'
projections, count what happened, and check the domain's invariants.

A run against services that were already running reads the topics from where they ended
when it started (``end_offsets``), and only the events of its own aggregates (its persons,
units, merchants, staff and the clock it moved): what earlier runs' people go on causing
as the clock moves (a replacement becoming ready, a month end's transfer) is not its own."""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import TopicPartition

from shared.settings import Settings
from shared.topic_reader import batches_to_end, topic_reader
from shared.topics import TOPICS

from .client import Ecosystem
from .driver import Holder, Ledger
from .series import Series

STALL_SECONDS = 120.0
"""Longest reading the topics back may go without a record before it fails (naming the
partitions short of their end)."""
FETCH_BYTES = 8 * 1024 * 1024
"""Per partition and fetch: the verifier reads whole topics, in few round trips."""
SAMPLE_LIMIT = 5000
"""Above this many persons, projections are compared on a seeded sample of this size."""
Offsets = dict[TopicPartition, int]
Ours = Callable[[dict[str, str], dict[str, Any]], bool]
"""Whether an event (its CloudEvents attributes and data) is of this run's aggregates."""


LEDGER_EVENTS = {
    "persons": (("PersonRegistered", "person_id"),),
    "cards": (("CardIssued", "card_number"),),
    "vouchers": (("CardLost", "voucher"),),
    "receipts": (("ReplacementRequested", "receipt_number"),),
    "stamps": (("BankStamped", "receipt_number"),),
    "authorisations": (("PurchaseAuthorised", "authorisation_id"), ("PurchaseDeclined", "authorisation_id")),
    "contributions": (("ContributionPaid", "contribution_id"),),
}
"""Which event (and which of its fields) shows that a command the services accepted was published."""


@dataclass
class Tally:
    """What the checks need from the topics, folded event by event as they are read (the
    events themselves are not kept: a year of 100,000 persons is millions of them).

    The cards topic must be read before the bank's (``loss_window`` keeps only the swipes
    of cards already known lost). A person's events come in their partition's order; an
    event whose ``sequence`` is not above the last one seen for that person is a copy
    published again (a relay resending after a crash) and is counted but not checked again."""

    ledger: dict[str, set[str]] = field(default_factory=dict)
    """Ids the services accepted, by ledger kind; each one published is taken out (what is
    left at the end was never published)."""
    names: Counter[str] = field(default_factory=Counter)
    declined: Counter[str] = field(default_factory=Counter)
    losses: Counter[str] = field(default_factory=Counter)
    collected: int = 0
    transfers: int = 0
    credits_fen: int = 0
    debits_fen: int = 0
    balance_by_person: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    lost_at: dict[str, datetime] = field(default_factory=dict)
    blocked_at: dict[str, datetime] = field(default_factory=dict)
    swipes_of_lost_cards: list[tuple[str, datetime, int]] = field(default_factory=list)
    """(card, instant, amount in fen) of each purchase authorised on a card reported lost."""
    blocked_by_person: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    last_sequence: dict[str, int] = field(default_factory=dict)
    purchase_after_loss: bool = False
    dead_letters: int = 0
    series: Series | None = None
    """The report's charts, folded from the same events (see series.py)."""
    copies: int = 0
    """Records that were an event already read (same id), published again: not counted."""
    others: Tally | None = None
    """A run on running services: the events that were not its own, folded apart (the
    bank's ledger moved by them too, see ``money_conserved``)."""
    _wanted: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ledger = {kind: set(ids) for kind, ids in self.ledger.items()}
        for kind, events in LEDGER_EVENTS.items():
            for name, key in events:
                self._wanted.setdefault(name, []).append((kind, key))

    def add(self, service: str, attrs: dict[str, str], data: dict[str, Any] | None) -> None:
        name = attrs.get("type", "...").split(".")[-2]
        self.names[name] += 1
        d = data or {}
        if self.series is not None:
            self.series.add(service, name, attrs, d)
        for kind, key in self._wanted.get(name, ()):
            if key in d:
                self.ledger[kind].discard(str(d[key]))
        if service == "cards":
            if name == "CardLost":
                self.losses[d["channel"]] += 1
                self.lost_at[d["card_number"]] = _when(attrs)
            elif name == "CardCancelled" and d["reason"] == "replaced":
                self.collected += 1
        elif service == "bank":
            self._bank(name, attrs, d)

    def _bank(self, name: str, attrs: dict[str, str], d: dict[str, Any]) -> None:
        if name == "PurchaseDeclined":
            self.declined[d["reason_code"]] += 1
        elif name == "MonthlyTransfer":
            self.transfers += 1
            self.credits_fen += d["amount_fen"]
            self.balance_by_person[d["person_id"]] += d["amount_fen"]
        elif name == "PurchaseAuthorised":
            self.debits_fen += d["amount_fen"]
            self.balance_by_person[d["person_id"]] -= d["amount_fen"]
            if d["card_number"] in self.lost_at:
                self.swipes_of_lost_cards.append((d["card_number"], _when(attrs), int(d["amount_fen"])))
        elif name == "CardBlocked" and d["reason"] == "lost":
            self.blocked_at.setdefault(d["card_number"], _when(attrs))
        # In the bank's own order of one person's events: nothing authorised after a block.
        person, sequence = attrs.get("partitionkey", ""), int(attrs.get("sequence", 0))
        if sequence <= self.last_sequence.get(person, -1):
            return  # a copy of an event already checked in its place
        self.last_sequence[person] = sequence
        if name == "CardBlocked":
            self.blocked_by_person[person].add(d["card_number"])
        elif name == "PurchaseAuthorised" and d["card_number"] in self.blocked_by_person.get(person, ()):
            self.purchase_after_loss = True


RECENT_IDS = 20_000
"""Event ids remembered per partition to recognise a copy published again (it follows its
original closely: the relay resends what it had not yet marked published)."""


@dataclass
class _Recent:
    ids: set[str] = field(default_factory=set)
    order: deque[str] = field(default_factory=deque)

    def again(self, ident: str | None) -> bool:
        """Whether ``ident`` was among the partition's last RECENT_IDS events (remembered now)."""
        if ident is None:
            return False
        if ident in self.ids:
            return True
        self.ids.add(ident)
        self.order.append(ident)
        if len(self.order) > RECENT_IDS:
            self.ids.discard(self.order.popleft())
        return False


def _partitions(settings: Settings) -> list[tuple[str, list[TopicPartition]]]:
    """Each service's topic and dead-letter topic partitions: the clock first (the series
    date events by it), then cards (before the bank's), then the others."""
    order = sorted(TOPICS.items(), key=lambda item: {"clock": 0, "cards": 1}.get(item[0], 2))
    return [(service, [TopicPartition(name, p) for name in (topic.name(settings.namespace),
                                                            topic.dlq(settings.namespace))
                       for p in range(topic.partitions)]) for service, topic in order]


async def end_offsets(settings: Settings) -> Offsets:
    """Where every topic and dead-letter topic ends now: a run against a running stack
    reads from there (``read_stream``'s ``since``)."""
    async with topic_reader(settings, "verify") as consumer:
        parts = [tp for _, service_parts in _partitions(settings) for tp in service_parts]
        return dict(await consumer.end_offsets(parts))


async def read_stream(settings: Settings, ledger: Ledger | None = None, series: Series | None = None, *,
                      since: Mapping[TopicPartition, int] | None = None, ours: Ours | None = None) -> Tally:
    """Every event of every topic (and the count of dead letters), read once from the start
    and folded into a Tally (the cards topic first). A copy of an event (same CloudEvents id)
    published again is counted apart (``copies_published_again``), not as another event: the
    business figures of a run with faults are those of the same run without.

    ``since``: read each partition from this offset instead (a run against a running stack,
    see ``end_offsets``); ``ours``: fold only the events it accepts, the others into
    ``Tally.others`` (every dead letter since is counted: one that came while the run ran
    is worth a look whoever caused it)."""
    tally = Tally(ledger={kind: getattr(ledger, kind) for kind in LEDGER_EVENTS} if ledger else {}, series=series)
    others = tally.others = Tally() if ours is not None else None
    async with topic_reader(settings, "verify", max_partition_fetch_bytes=FETCH_BYTES) as consumer:
        for service, parts in _partitions(settings):
            recent: dict[tuple[str, int], _Recent] = {}
            async for records in batches_to_end(consumer, parts, start=since, max_records=20_000,
                                                stall_seconds=STALL_SECONDS):
                for record in records:
                    if record.topic.endswith(".dlq"):
                        tally.dead_letters += 1
                        continue
                    attrs = {k[3:]: v.decode() for k, v in (record.headers or ()) if k.startswith("ce_")}
                    data = json.loads(record.value) if record.value else None
                    into = others if others is not None and ours is not None and not ours(attrs, data or {}) else tally
                    seen = recent.setdefault((record.topic, record.partition), _Recent())
                    if seen.again(attrs.get("id")):
                        into.copies += 1  # published again (a relay resending after a crash or an outage)
                        continue
                    into.add(service, attrs, data)
    return tally


def _when(attrs: dict[str, str]) -> datetime:
    return datetime.fromisoformat(attrs["time"].replace("Z", "+00:00"))


def count(tally: Tally) -> dict[str, Any]:
    """The report's business figures, straight from the topics."""
    names = tally.names
    return {
        "events_published": sum(names.values()),
        "events_by_type": dict(sorted(names.items())),
        "purchases": {"authorised": names["PurchaseAuthorised"], "declined": dict(sorted(tally.declined.items()))},
        "losses": dict(tally.losses),
        "fraud_attempts_blocked": names["FraudAlertRaised"],
        "replacements": {
            "requested": names["ReplacementRequested"], "stamped": names["BankStamped"],
            "ready": names["ReplacementReady"], "collected": tally.collected,
        },
        "monthly_transfers": {"count": tally.transfers, "total_fen": tally.credits_fen},
        "dead_letters": tally.dead_letters,
        "copies_published_again": tally.copies,
    }


def loss_window(tally: Tally) -> dict[str, Any]:
    """From each loss report to the bank blocking that card: latency, and purchases inside."""
    lost_at, blocked_at = tally.lost_at, tally.blocked_at
    latencies = sorted((blocked_at[c] - t).total_seconds() * 1000 for c, t in lost_at.items() if c in blocked_at)
    window = [fen for c, when, fen in tally.swipes_of_lost_cards if c in blocked_at and lost_at[c] <= when < blocked_at[c]]

    def pct(q: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2) if latencies else None

    return {"reports": len(lost_at), "applied_by_bank": len(latencies), "latency_ms_p50": pct(0.5),
            "latency_ms_p99": pct(0.99), "purchases_inside_window": len(window), "fen_inside_window": sum(window)}


def loss_latencies(tally: Tally) -> list[float]:
    """Each applied loss's time from CardLost to the bank's CardBlocked (ms); 0 when the bank
    stopped the card first (its stamp of a replacement reported the loss)."""
    return [max(0.0, (tally.blocked_at[c] - t).total_seconds() * 1000)
            for c, t in tally.lost_at.items() if c in tally.blocked_at]


def no_purchase_after_loss(tally: Tally) -> bool:
    """In the bank's own order of events per person, nothing is authorised on a card after
    the bank blocked it."""
    return not tally.purchase_after_loss


async def bank_accounts(eco: Ecosystem, person_ids: list[str]) -> list[dict[str, Any]]:
    """The bank's account of each person (read once for the checks that need it)."""
    return await _gather(eco, "bank", [f"/v1/accounts/{p}" for p in person_ids])


async def ledger_totals(eco: Ecosystem) -> dict[str, int]:
    """The bank's ledger totals now (``credits_fen``, ``debits_fen``, ``balance_fen``)."""
    totals = await eco.call("bank", "GET", "/v1/ledger/totals", who="operator")
    return {k: int(totals[k]) for k in ("credits_fen", "debits_fen", "balance_fen")}


async def money_conserved(eco: Ecosystem, tally: Tally, person_ids: list[str],
                          accounts: list[dict[str, Any]] | None = None,
                          before: Mapping[str, int] | None = None) -> bool:
    """Ledger totals agree with the topics, and every account's balance is credits - debits >= 0.
    ``before``: the totals when the run started (a running stack's ledger holds earlier runs
    too): what the ledger moved since must be what the events since say, the run's and the
    others' (``tally.others``: a transfer to an earlier run's person under the run's clock,
    someone else's purchase meanwhile)."""
    credits, debits = tally.credits_fen, tally.debits_fen
    if tally.others is not None:
        credits, debits = credits + tally.others.credits_fen, debits + tally.others.debits_fen
    totals = await ledger_totals(eco)
    moved = {k: v - (before or {}).get(k, 0) for k, v in totals.items()}
    if (moved["credits_fen"], moved["debits_fen"], moved["balance_fen"]) != (credits, debits, credits - debits):
        return False
    per_person = tally.balance_by_person
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


def nothing_lost(tally: Tally, pending_outbox: int) -> dict[str, bool]:
    """Every command a service accepted has its events on the topics; no outbox holds anything."""
    return {**{kind: not tally.ledger.get(kind) for kind in LEDGER_EVENTS}, "outboxes_empty": pending_outbox == 0}


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
