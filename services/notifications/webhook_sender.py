"""The webhook sender: POSTs each subscription's queue in order, signed, with backoff.

Per subscription only the head of the queue (lowest sequence still pending) is ever
tried: event n+1 waits until n succeeded, so a receiver that was down gets everything,
in order, once it is back. Failures back off exponentially up to a cap and are retried
until they succeed (or the subscription is deleted). The first attempts of each
delivery are logged in full; later ones update the last status, error and count.

Each delivery goes to an address of the URL's host checked just before (``targets``: never
an internal one unless allowed), with no proxy from the environment and no redirect
followed. Of the answer only the status code and the time it took are kept: its body is
never read, and a transport error is recorded by its kind alone (its text may quote what
the other end sent), so a webhook cannot be used to read what answers inside the network.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.bounded import stop_if_cancelled, wait_event, within
from shared.database import one_batch
from shared.logging import get_logger
from shared.security import UndecryptableSecret

from .config import NotificationSettings
from .domain import backoff
from .signing import signed_headers
from .targets import RefusedTarget, pinned
from .webhooks import WebhookHub

log = get_logger("notifications.webhooks")
LOGGED_ATTEMPTS = 20


class WebhookSender:
    def __init__(self, settings: NotificationSettings, hub: WebhookHub) -> None:
        self.settings = settings
        self.hub = hub

    async def run(self) -> None:
        """Drain every subscription's queue, then sleep until woken or the next poll; until cancelled."""
        async with httpx.AsyncClient(timeout=self.settings.webhook_timeout_seconds, trust_env=False,
                                     follow_redirects=False) as client:
            while True:
                self.hub.wake.clear()  # before the pass: an event recorded during it is not missed
                try:
                    subs = await self.hub.active()
                    progressed = any(await asyncio.gather(*(self._drain(client, s) for s in subs)))
                except Exception as err:  # database down or a bug: keep the worker alive
                    stop_if_cancelled(err)
                    log.warning("webhooks.send_failed", error=repr(err))
                    progressed = False
                stop_if_cancelled()  # the pass may have swallowed it (pymongo)
                if not progressed:
                    await wait_event(self.hub.wake, self.settings.worker_poll_seconds)

    async def _drain(self, client: httpx.AsyncClient, sub: dict[str, Any]) -> bool:
        """Deliver the subscription's due head, and the next, until one fails or none is due."""
        delivered = False
        while True:
            heads = await one_batch(self.hub.deliveries.find(
                {"webhook_id": sub["_id"], "status": "pending"}).sort("seq", 1), 1)
            head = heads[0] if heads else None
            now = datetime.now(UTC)
            if head is None or head["next_attempt_at"] > now or not await self._claim(head, now):
                return delivered
            if not await self._attempt(client, sub, head):
                return delivered
            delivered = True

    async def _claim(self, head: dict[str, Any], now: datetime) -> bool:
        lease = timedelta(seconds=self.settings.webhook_timeout_seconds + 30)
        res = await self.hub.deliveries.update_one(
            {"_id": head["_id"], "status": "pending", "next_attempt_at": head["next_attempt_at"]},
            {"$set": {"next_attempt_at": now + lease}})
        return res.modified_count == 1

    async def _attempt(self, client: httpx.AsyncClient, sub: dict[str, Any], delivery: dict[str, Any]) -> bool:
        """One signed POST of the delivery's event; records the outcome. True if accepted (2xx)."""
        envelope = await self.hub.envelope_of(delivery)
        started = time.monotonic()
        code: int | None = None
        try:
            secret: str | None = self.hub.secret_of(sub)
        except UndecryptableSecret:
            secret = None
        if envelope is None:
            error: str | None = f"event {delivery['event_id']} is not in the event store"
        elif secret is None:
            error = "cannot sign: the subscription's secret does not open with MEDCARD_WEBHOOK_SECRET_KEY"
        else:
            body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
            headers = signed_headers(secret, delivery["event_id"], int(time.time()), body)
            try:
                # Bounded in all, not per read as httpx's timeout: the claim's lease runs out
                # 30 s after the timeout, and a receiver must not get a second copy meanwhile.
                code = await within(self._post(client, sub["url"], body, headers),
                                    self.settings.webhook_timeout_seconds, f"the answer of webhook {sub['_id']}")
                error = None if 200 <= code < 300 else f"HTTP {code}"
            except RefusedTarget as err:
                error = f"refused: {err}"
            except (httpx.HTTPError, TimeoutError) as err:
                stop_if_cancelled(err)
                error = type(err).__name__
        await self._record(delivery, code, error, round((time.monotonic() - started) * 1000))
        return error is None

    async def _post(self, client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST to the checked address of the URL's host; the answer's status code (its body is never read)."""
        target = await pinned(url, self.hub.allowed)
        request = client.build_request("POST", target.url, content=body, headers={**headers, **target.headers},
                                       extensions=target.extensions)
        response = await client.send(request, stream=True)
        await response.aclose()
        return response.status_code

    async def _record(self, delivery: dict[str, Any], code: int | None, error: str | None, ms: int) -> None:
        now = datetime.now(UTC)
        attempts = delivery["attempts"] + 1
        fields: dict[str, Any] = {"last_status_code": code, "last_error": error, "last_attempt_at": now}
        if error is None:
            fields |= {"status": "delivered", "delivered_at": now, "next_attempt_at": None}
        else:
            s = self.settings
            delay = backoff(attempts, s.webhook_backoff_seconds, s.webhook_backoff_max_seconds)
            fields["next_attempt_at"] = now + delay
            log.info("webhooks.attempt_failed", delivery_id=delivery["_id"], error=error, attempts=attempts)
        update: dict[str, Any] = {"$set": fields, "$inc": {"attempts": 1}}
        if attempts <= LOGGED_ATTEMPTS:
            update["$push"] = {"log": {"at": now, "status_code": code, "error": error, "duration_ms": ms}}
        await self.hub.deliveries.update_one({"_id": delivery["_id"], "status": "pending"}, update)
