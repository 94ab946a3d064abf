"""Webhook subscriptions, the store of received events and the per-subscription queue.

Every consumed event is kept (``event_log``, for replays and deliveries; its key is its
time as a sortable stamp to the microsecond, then its id, so a range of time is a range of
the primary key and the store needs no other index) and enqueued for each matching
subscription as a delivery with the subscription's next sequence number; the sender
delivers them strictly in that order. The store of before (``received_events``, keyed by
the event id, with an index of time) is still read, no longer written. Enqueueing an
event is idempotent (the delivery id derives from subscription and event), so a
redelivered event is queued once; a resend or a replay enqueues anew, at the end of the
queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.database import holds_any, insert_new, one_batch
from shared.domain import Conflict, Invalid, NotFound
from shared.events import CloudEvent
from shared.ids import new_id
from shared.logging import get_logger
from shared.security import SecretBox

from .domain import check_replay_range, check_replay_size, stamp, subscribed
from .signing import new_secret
from .targets import Networks, RefusedTarget, check_url

Reason = Literal["event", "resend", "replay"]
REPLAY_LIMIT = 10_000
ROUTING_TTL = 1.0
_IDS = uuid.UUID("0b5e7b8e-3f7d-4d1e-8f49-54cf0f8c2a61")
SECRET_PURPOSE = "webhook signing secrets"
EVENT_LOG = "event_log"
LEGACY_EVENTS = "received_events"
log = get_logger("notifications.webhooks")
ANSWER_QUOTED = r"^HTTP [0-9]+: "
"""How an error quoting the receiver's answer began before only status codes were kept."""


def _status_only(error: str | None) -> str | None:
    """``HTTP 500: <answer>`` -> ``HTTP 500``; any other error as it is."""
    if error and re.match(ANSWER_QUOTED, error):
        return error.split(":", 1)[0]
    return error


def event_key(event: CloudEvent) -> str:
    """An event's key in the event log: its time (``stamp``), then its id. The same for a
    redelivery (kept once); the keys of an interval of time are an interval of keys."""
    return f"{stamp(event.time)}/{event.id}"


def key_parts(key: str) -> tuple[str, str]:
    """An event log key's time stamp and event id (the inverse of ``event_key``)."""
    time_, event_id = key.split("/", 1)
    return time_, event_id


def structured(event: CloudEvent) -> dict[str, Any]:
    """The event in CloudEvents structured JSON mode (attributes without value left out)."""
    envelope = event.model_dump(mode="json")
    return {k: v for k, v in envelope.items() if v is not None}


class WebhookHub:
    """Subscriptions keep their signing secret sealed (``secret_sealed``, AES-GCM under
    ``MEDCARD_WEBHOOK_SECRET_KEY``, bound to the subscription id): a dump of the database
    cannot sign a webhook. Their URLs go to public addresses only, but for the ``allowed``
    networks (``targets``)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], secret_key: str, allowed: Networks = ()) -> None:
        self.allowed = allowed
        self.subscriptions = db["webhooks"]
        self.deliveries = db["webhook_deliveries"]
        self.events = db[EVENT_LOG]
        self.legacy_events = db[LEGACY_EVENTS]
        self.box = SecretBox(secret_key, SECRET_PURPOSE)
        self.wake = asyncio.Event()
        self._routing: tuple[float, list[dict[str, Any]]] | None = None

    async def create_indexes(self) -> None:
        await self.deliveries.create_index([("webhook_id", 1), ("status", 1), ("seq", 1)])
        await self.deliveries.create_index([("webhook_id", 1), ("seq", 1)])
        await self.seal_clear_secrets()
        await self.forget_answer_texts()

    async def seal_clear_secrets(self) -> int:
        """Seal the secrets of subscriptions stored before secrets were encrypted (once)."""
        sealed = 0
        for doc in await self.subscriptions.find({"secret": {"$exists": True}}, {"secret": 1}).to_list():
            res = await self.subscriptions.update_one(
                {"_id": doc["_id"], "secret": doc["secret"]},
                {"$set": {"secret_sealed": self.box.seal(doc["secret"], bound_to=doc["_id"])},
                 "$unset": {"secret": ""}})
            sealed += res.modified_count
        if sealed:
            log.info("webhooks.secrets_sealed", count=sealed)
        return sealed

    async def forget_answer_texts(self) -> int:
        """Cut what earlier versions kept of a receiver's answer (``HTTP 500: <its first 200
        characters>``) down to its status code, in the last error and the attempt log (once)."""
        quoted = {"$regex": ANSWER_QUOTED}
        forgotten = 0
        for doc in await self.deliveries.find({"$or": [{"last_error": quoted}, {"log.error": quoted}]},
                                              {"last_error": 1, "log": 1}).to_list():
            log_ = [{**entry, "error": _status_only(entry.get("error"))} for entry in doc.get("log") or []]
            res = await self.deliveries.update_one({"_id": doc["_id"]}, {"$set": {
                "last_error": _status_only(doc.get("last_error")), "log": log_}})
            forgotten += res.modified_count
        if forgotten:
            log.info("webhooks.answer_texts_forgotten", count=forgotten)
        return forgotten

    def secret_of(self, sub: dict[str, Any]) -> str:
        """The signing secret of a subscription (UndecryptableSecret under another key)."""
        return self.box.open(sub["secret_sealed"], bound_to=sub["_id"])

    # -- subscriptions -------------------------------------------------------------
    async def subscribe(self, *, url: str, event_types: list[str], secret: str | None) -> tuple[dict[str, Any], str]:
        """Store a subscription; returns it and its signing secret (shown once, stored sealed).
        A URL to an internal address or with a user and password is refused (422)."""
        try:
            check_url(url, self.allowed)
        except RefusedTarget as err:
            raise Invalid(f"body.url: {err}") from None
        webhook_id, secret = new_id("wh_"), secret or new_secret()
        doc = {"_id": webhook_id, "url": url, "event_types": event_types,
               "secret_sealed": self.box.seal(secret, bound_to=webhook_id),
               "active": True, "created_at": datetime.now(UTC), "next_seq": 0}
        await self.subscriptions.insert_one(doc)
        self._routing = None
        return doc, secret

    async def active(self) -> list[dict[str, Any]]:
        """The active subscriptions, oldest first (sorted here: see ``shared.database.one_batch``)."""
        return sorted(await self.subscriptions.find({"active": True}).to_list(), key=lambda d: d["created_at"])

    async def routing(self) -> list[dict[str, Any]]:
        """The active subscriptions' ids and event types, for fanning events out.

        Read again at most every ``ROUTING_TTL`` seconds instead of once per event; a
        change made through this process is seen at once, one made through another
        replica within ``ROUTING_TTL``.
        """
        now = asyncio.get_running_loop().time()
        if self._routing is None or now - self._routing[0] > ROUTING_TTL:
            subs = await self.subscriptions.find({"active": True}, {"event_types": 1}).to_list()
            self._routing = (now, subs)
        return self._routing[1]

    async def get(self, webhook_id: str) -> dict[str, Any]:
        doc = await self.subscriptions.find_one({"_id": webhook_id, "active": True})
        if doc is None:
            raise NotFound(f"no webhook subscription {webhook_id}")
        return doc

    async def unsubscribe(self, webhook_id: str) -> None:
        """Deactivate the subscription and cancel what it still had to deliver."""
        res = await self.subscriptions.update_one({"_id": webhook_id, "active": True},
                                                  {"$set": {"active": False, "deleted_at": datetime.now(UTC)}})
        self._routing = None
        if res.matched_count == 0:
            raise NotFound(f"no webhook subscription {webhook_id}")
        await self.deliveries.update_many({"webhook_id": webhook_id, "status": "pending"},
                                          {"$set": {"status": "cancelled", "next_attempt_at": None}})

    # -- received events and fan-out -------------------------------------------------
    async def record(self, event: CloudEvent) -> None:
        """Keep the event and enqueue it once for every subscription that wants it."""
        with contextlib.suppress(DuplicateKeyError):  # a redelivery: the fan-out below is idempotent too
            await self.events.insert_one(self._kept(event))
        await self._fan_out(event)

    async def record_many(self, events: list[CloudEvent]) -> None:
        """``record`` for a consumer batch: the events kept by one ``insert_many`` (those
        already kept, a redelivery, left as they are), then each fanned out."""
        if not events:
            return
        await insert_new(self.events, [self._kept(e) for e in events])
        if await self.routing():
            for event in events:
                await self._fan_out(event)

    @staticmethod
    def _kept(event: CloudEvent) -> dict[str, Any]:
        """The kept event: DocumentDB writes an entry in every secondary index of a collection
        for each document (an index of time cost an entry per event); its key serves instead."""
        return {"_id": event_key(event), "type": event.type, "envelope": structured(event)}

    async def _fan_out(self, event: CloudEvent) -> None:
        queued = False
        for sub in await self.routing():
            if subscribed(sub["event_types"], event.type):
                delivery_id = "D" + uuid.uuid5(_IDS, f"{sub['_id']}/{event.id}").hex
                queued |= await self._enqueue(sub["_id"], event.id, event.type, delivery_id, "event",
                                              event_key=event_key(event)) is not None
        if queued:
            self.wake.set()

    async def _enqueue(self, webhook_id: str, event_id: str, event_type: str, delivery_id: str, reason: Reason,
                       resend_of: str | None = None, *, event_key: str | None) -> dict[str, Any] | None:
        """Append a delivery to the subscription's queue; None if that delivery exists.
        ``event_key``: the event's key in the event log (None: kept in the store of before)."""
        if await self.deliveries.find_one({"_id": delivery_id}, {"_id": 1}):
            return None
        sub = await self.subscriptions.find_one_and_update(
            {"_id": webhook_id}, {"$inc": {"next_seq": 1}}, return_document=ReturnDocument.AFTER)
        if sub is None:
            raise NotFound(f"no webhook subscription {webhook_id}")
        now = datetime.now(UTC)
        doc = {"_id": delivery_id, "webhook_id": webhook_id, "event_id": event_id, "event_type": event_type,
               "event_key": event_key, "seq": sub["next_seq"], "reason": reason, "resend_of": resend_of, "status": "pending",
               "attempts": 0, "created_at": now, "next_attempt_at": now, "last_status_code": None,
               "last_error": None, "delivered_at": None, "log": []}
        try:
            await self.deliveries.insert_one(doc)
        except DuplicateKeyError:
            return None
        return doc

    # -- deliveries ----------------------------------------------------------------------
    async def deliveries_of(self, webhook_id: str, status: str | None, limit: int) -> list[dict[str, Any]]:
        await self.get(webhook_id)
        query: dict[str, Any] = {"webhook_id": webhook_id}
        if status:
            query["status"] = status
        return await one_batch(self.deliveries.find(query).sort("seq", -1), limit)

    async def resend(self, webhook_id: str, delivery_id: str) -> dict[str, Any]:
        """A pending delivery is tried now; a delivered or cancelled one is enqueued again."""
        sub = await self.get(webhook_id)
        delivery = await self.deliveries.find_one({"_id": delivery_id, "webhook_id": sub["_id"]})
        if delivery is None:
            raise NotFound(f"no delivery {delivery_id} for webhook {webhook_id}")
        if delivery["status"] == "pending":
            await self.deliveries.update_one({"_id": delivery_id, "status": "pending"},
                                             {"$set": {"next_attempt_at": datetime.now(UTC)}})
            doc = await self.deliveries.find_one({"_id": delivery_id})
        else:
            doc = await self._enqueue(webhook_id, delivery["event_id"], delivery["event_type"],
                                      "D" + uuid.uuid4().hex, "resend", resend_of=delivery_id,
                                      event_key=delivery.get("event_key"))
        if doc is None:
            raise Conflict(f"delivery {delivery_id} changed meanwhile; list the deliveries again")
        self.wake.set()
        return doc

    async def replay(self, webhook_id: str, since: datetime, until: datetime) -> int:
        """Enqueue again every kept event of [since, until) that the subscription wants, oldest first."""
        check_replay_range(since, until)
        sub = await self.get(webhook_id)
        found = await self._kept_between(stamp(since), stamp(until))
        check_replay_size(len(found), REPLAY_LIMIT)
        count = 0
        for _, event_id, event_type, key in found:
            if subscribed(sub["event_types"], event_type):
                await self._enqueue(webhook_id, event_id, event_type, "D" + uuid.uuid4().hex, "replay", event_key=key)
                count += 1
        self.wake.set()
        return count

    async def _kept_between(self, since: str, until: str) -> list[tuple[str, str, str, str | None]]:
        """(time, event id, type, key in the event log) of the events kept in [since, until),
        oldest first, at most ``REPLAY_LIMIT + 1``: the event log's by its key (an event kept
        in both stores, once), the store of before's by its index of time."""
        rows = {}
        for doc in await one_batch(self.events.find({"_id": {"$gte": since, "$lt": until}}, {"type": 1})
                                   .sort("_id", 1), REPLAY_LIMIT + 1):
            time_, event_id = key_parts(doc["_id"])
            rows[event_id] = (time_, event_id, doc["type"], doc["_id"])
        if await holds_any(self.legacy_events):
            for doc in await one_batch(self.legacy_events.find({"time": {"$gte": since, "$lt": until}},
                                                               {"type": 1, "time": 1})
                                       .sort([("time", 1), ("received_at", 1)]), REPLAY_LIMIT + 1):
                rows.setdefault(doc["_id"], (doc["time"], doc["_id"], doc["type"], None))
        return sorted(rows.values(), key=lambda row: row[0])[:REPLAY_LIMIT + 1]

    async def envelope_of(self, delivery: dict[str, Any]) -> dict[str, Any] | None:
        """The kept event a delivery sends, in CloudEvents structured JSON (None if not kept)."""
        key = delivery.get("event_key")
        stored = await (self.events.find_one({"_id": key}) if key is not None
                        else self.legacy_events.find_one({"_id": delivery["event_id"]}))
        return stored["envelope"] if stored is not None else None
