"""SMS delivery channels: the interface, the gateway simulator (default) and an HTTP provider."""

from __future__ import annotations

import asyncio

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

import httpx
from pymongo.asynchronous.collection import AsyncCollection

from shared.bounded import within
from shared.database import holds_any, insert_new, one_batch


class SmsDeliveryError(Exception):
    """The channel did not accept the message; the attempt may be retried."""


@dataclass(frozen=True)
class Sms:
    message_id: str
    person_id: str
    mobile: str
    text: str
    urgent: bool
    business_date: date | None = None


class SmsChannel(Protocol):
    """Delivers SMS. Sending the same message id twice must not reach the phone twice (the
    id is the idempotency key)."""

    name: str
    pass_size: int
    """Most SMS one dispatch pass hands over (a pass must end well inside a message's lease)."""

    async def send(self, sms: Sms) -> None:
        """Deliver one SMS or raise SmsDeliveryError."""

    async def send_many(self, batch: list[Sms]) -> list[SmsDeliveryError | None]:
        """Deliver a dispatch pass's SMS; for each, None (accepted) or why it was not."""


class SmsGatewaySimulator:
    """Records each SMS in the service's database instead of sending it; can be told to
    fail the next N sends (drills and tests; the count is kept per process).

    A record's key is the person's id, then the message's (``person/message``): the same
    message sent again is recorded once, and a person's SMS are a range of the primary key,
    so the collection needs no other index (DocumentDB writes an entry in each for every
    record: ``scripts/index_cost.py``). The records of before (``legacy``: keyed by the
    message id, with an index of person and time) are still listed, no longer written."""

    name = "sms-simulator"
    pass_size = 500
    """One ``insert_many``: a pass's cost is mostly its read of the due messages, which
    DocumentDB sorts whole (a backlog of 100,000 after a month end: 0.5 s a read), so the
    more a read brings, the cheaper each message."""

    def __init__(self, collection: AsyncCollection[dict[str, Any]], fail_next: int = 0,
                 legacy: AsyncCollection[dict[str, Any]] | None = None) -> None:
        self.collection = collection
        self.fail_next = fail_next
        self.legacy = legacy

    async def send(self, sms: Sms) -> None:
        error = (await self.send_many([sms]))[0]
        if error is not None:
            raise error

    async def send_many(self, batch: list[Sms]) -> list[SmsDeliveryError | None]:
        """The first ``fail_next`` fail; the others are recorded by one insert (a message
        recorded already was delivered: the phone gets it once)."""
        errors: list[SmsDeliveryError | None] = []
        for _ in batch:
            if self.fail_next > 0:
                self.fail_next -= 1
                errors.append(SmsDeliveryError(f"simulated gateway failure ({self.fail_next} more to come)"))
            else:
                errors.append(None)
        now = datetime.now(UTC)
        docs = [{"_id": f"{sms.person_id}/{sms.message_id}", "message_id": sms.message_id,
                 "person_id": sms.person_id, "mobile": sms.mobile, "text": sms.text, "urgent": sms.urgent, "sent_at": now,
                 "business_date": sms.business_date.isoformat() if sms.business_date else None}
                for sms, error in zip(batch, errors, strict=True) if error is None]
        if docs:
            await insert_new(self.collection, docs)
        return errors

    async def sent_to(self, person_id: str | None, limit: int) -> list[dict[str, Any]]:
        """What the gateway delivered, oldest first (optionally to one person): each record
        with its ``message_id``."""
        if person_id:  # by the key's range (a person's few)
            found = await one_batch(self.collection.find({"_id": {"$gte": f"{person_id}/", "$lt": f"{person_id}0"}})
                                    .sort("sent_at", 1), limit)
        else:
            found = await one_batch(self.collection.find({}).sort("sent_at", 1), limit)
        if self.legacy is not None and await holds_any(self.legacy):
            query = {"person_id": person_id} if person_id else {}
            found += [{**doc, "message_id": doc["_id"]}
                      for doc in await one_batch(self.legacy.find(query).sort("sent_at", 1), limit)]
        return sorted(found, key=lambda doc: doc["sent_at"])[:limit]


SEND_CONCURRENCY = 8
"""SMS of one pass in flight at once to an HTTP provider (one request each)."""


class HttpSmsProvider:
    """A real provider behind an HTTP API: POSTs JSON {message_id, mobile, text, urgent} to
    the configured URL with the message id as ``Idempotency-Key``; any 2xx is accepted.
    One keep-alive client for the service's life (``aclose`` at its stop), made at the first
    send; a pass's SMS go ``SEND_CONCURRENCY`` at a time."""

    name = "sms-http"
    pass_size = 5 * SEND_CONCURRENCY
    """Five rounds of requests: 50 s at worst (each bounded by the 10 s timeout), inside the
    60 s lease."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None

    async def send(self, sms: Sms) -> None:
        body = {"message_id": sms.message_id, "mobile": sms.mobile, "text": sms.text, "urgent": sms.urgent}
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        try:
            # httpx's timeout bounds each read, not the answer: a provider trickling bytes is
            # cut off after ``timeout`` in all (well inside the message's lease).
            response = await within(
                self._client.post(self.url, json=body, headers={"Idempotency-Key": sms.message_id}),
                self.timeout, f"the SMS provider's answer for {sms.message_id}")
        except (httpx.HTTPError, TimeoutError) as err:
            raise SmsDeliveryError(f"provider unreachable: {type(err).__name__}: {err}") from None
        if not response.is_success:
            raise SmsDeliveryError(f"provider answered {response.status_code}: {response.text[:200]}")

    async def send_many(self, batch: list[Sms]) -> list[SmsDeliveryError | None]:
        """One request per SMS (the provider's API takes one at a time), ``SEND_CONCURRENCY``
        in flight; each SMS's outcome in the batch's order."""
        slots = asyncio.Semaphore(SEND_CONCURRENCY)

        async def one(sms: Sms) -> SmsDeliveryError | None:
            async with slots:
                try:
                    await self.send(sms)
                except SmsDeliveryError as err:
                    return err
                return None
        return list(await asyncio.gather(*(one(sms) for sms in batch)))

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
