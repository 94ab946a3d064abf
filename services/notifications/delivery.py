"""The SMS delivery worker: sends due messages through the channel, retries with backoff.

A message is claimed before it is sent (its next attempt moves one lease ahead), so
two replicas never send it at the same time; a crash mid-send leaves it due again
after the lease, and the channel's idempotency key keeps the phone from a second copy.
A message the consumer creates is born leased to its own process's dispatcher (``hold``),
which then sends it without a claim: one write of four fewer per message.

A message for a person whose contact details have not arrived yet (identity's topic is
not ordered with cards' or the bank's) waits as ``awaiting_contact`` until the
PersonRegistered is applied, which makes it due again (``contact_arrived``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from shared.database import one_batch
from shared.domain import Decision
from shared.bounded import stop_if_cancelled, wait_event, within
from shared.logging import get_logger
from shared.outbox import AggregateStore
from shared.security import ONE_TIME_CODE_PURPOSE, SecretBox, UndecryptableSecret

from .channels import Sms, SmsChannel, SmsDeliveryError
from .compose import MASKED_CODE, SEALED_CODE
from .config import NotificationSettings
from .domain import Message, Recipient, await_contact, contact_arrived, record_failure, record_sent, stamp
from .templates import Language, render

log = get_logger("notifications.sms")
LEASE = timedelta(seconds=60)
HELD_MARGIN = timedelta(seconds=20)
"""A message born leased is sent without a claim while more than this is left of its lease
(the send and the write of its outcome must end within it); later it is claimed as any."""
PASS_SECONDS = 300.0
"""Longest one dispatch pass may take (a stalled database or channel): then it is given up
and retried; each message's lease keeps a message in hand from being sent twice at once."""


class SmsDispatcher:
    def __init__(
        self,
        settings: NotificationSettings,
        *,
        messages: AggregateStore[Message],
        recipients: AsyncCollection[dict[str, Any]],
        channel: SmsChannel,
    ) -> None:
        self.settings = settings
        self.messages = messages
        self.recipients = recipients
        self.channel = channel
        self.codes = SecretBox(settings.otp_key, ONE_TIME_CODE_PURPOSE)
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._told: dict[str, None] = {}  # the messages a pass should take by id, oldest first
        self._held: dict[str, str] = {}  # told messages born leased to this process: id -> lease (stamp)
        self._everything = True  # the next pass looks for every due message
        self._scanned_at = 0.0  # the first pass looks for everything (``_everything``)
        self._retries: set[asyncio.TimerHandle] = set()  # wakes for retries after their backoff

    @staticmethod
    def hold(now: datetime) -> datetime:
        """The lease a message created ``now`` in this process is born with
        (``create_message(held_until=...)``; then ``wake(ids=..., held_until=...)``)."""
        return now + LEASE

    def wake(self, *, urgent: bool = True, ids: Iterable[str] | None = None,
             held_until: datetime | None = None) -> None:
        """Messages are due: the next pass starts at once if one is ``urgent``, else within
        ``sms_gather_seconds``, taking along those that arrive meanwhile. Given their ``ids``
        (the messages just created), the pass reads them by id; without, it looks for every
        due message. Messages created ``held_until`` (``hold``) are this process's to send
        until then: the pass takes them without a claim (one whose lease the document no
        longer carries, a message that was there already, is due or not as any other)."""
        if ids is None:
            self._everything = True
        else:
            ids = list(ids)
            self._told.update(dict.fromkeys(ids))
            if held_until is not None:
                self._held.update(dict.fromkeys(ids, stamp(held_until)))
        self._wake.set()
        if urgent:
            self._urgent.set()

    def _next_pass(self) -> list[str] | None:
        """What the next pass takes: None for every due message (asked for, or due every
        ``sms_scan_seconds``), else up to a pass of the messages told of (none: no pass)."""
        if self._everything or time.monotonic() - self._scanned_at >= self.settings.sms_scan_seconds:
            self._everything = False
            self._scanned_at = time.monotonic()
            # The look finds them too (a full one is followed by the next), but for those born
            # leased to this process: not due before their lease ends, they stay told of.
            self._told = dict.fromkeys(i for i in self._told if i in self._held)
            return None
        ids = list(itertools.islice(self._told, self.channel.pass_size))
        for message_id in ids:
            del self._told[message_id]
        return ids

    async def run(self) -> None:
        """Deliver what is due, then sleep until woken or the next poll; until cancelled.

        A pass costs some six database commands whatever its size, so one woken for a message
        that is not urgent first gathers the others for ``sms_gather_seconds`` (in the
        100,000-person run nine SMS a second came in as many passes); an urgent one (a code,
        a fraud alert) cuts the gathering short."""
        try:
            await self._passes()
        finally:
            for handle in self._retries:
                handle.cancel()
            self._retries.clear()

    async def _passes(self) -> None:
        while True:
            # Cleared before the pass, never after it: a message created while the pass runs
            # (after its query) wakes the next pass instead of waiting for a poll interval.
            self._wake.clear()
            self._urgent.clear()
            ids = self._next_pass()
            tried = 0
            try:
                what = f"SMS dispatch pass of up to {self.channel.pass_size} messages"
                if ids is None or ids:
                    tried = await within(self.dispatch_due(ids), PASS_SECONDS, what)
            except Exception as err:  # database down or a bug: keep the worker alive
                stop_if_cancelled(err)  # unless it is stopping (pymongo can turn a cancellation into its error)
                log.warning("sms.dispatch_failed", error=repr(err))
                self._everything = True  # the messages of a failed pass are looked for again
            stop_if_cancelled()  # the pass may have swallowed it (pymongo): not to sleep on
            if ids is None and tried >= self.channel.pass_size:
                self._everything = True
                continue  # a full look: more may be due already
            if self._told:
                continue  # more messages told of than a pass takes
            if not await wait_event(self._wake, self.settings.worker_poll_seconds):
                continue  # the poll: a look for every due message may be due
            if not self._urgent.is_set():
                await wait_event(self._urgent, self.settings.sms_gather_seconds)

    async def dispatch_due(self, ids: list[str] | None = None) -> int:
        """One pass over the due messages (urgent ones first), or over those of ``ids`` that
        are due; returns how many were tried.

        Whatever their number, the pass reads its messages, claims them, looks up their
        recipients, hands them to the channel and records them sent, one round trip each
        (the claimed documents are the ones the last write is guarded on: no read again).
        A failed send is recorded on its own (its backoff), a message whose recipient is
        not known yet waits for their details."""
        now = datetime.now(UTC)
        held = {i: lease for i in ids if (lease := self._held.pop(i, None)) is not None} if ids else {}
        docs = await (self._due() if ids is None else self._due_of(ids, now, held))
        if not docs:
            return 0
        claimed = await self._claim(docs, now, held)
        contacts = await self._contacts({doc["person_id"] for doc in claimed})
        ready: list[tuple[Message, dict[str, Any], str, str, Language, Sms]] = []
        for doc in claimed:
            message = Message.model_validate(doc)
            contact = contacts.get(doc["person_id"])
            if contact is None:
                await self._await_contact(message)
                continue
            name, mobile, language = contact
            try:
                text, kept = self._texts(message, name, language)
            except SmsDeliveryError as err:
                await self._record_failure(message, doc, err)
                continue
            ready.append((message, doc, kept, mobile, language, Sms(
                message.message_id, message.person_id, mobile, text, message.urgent, message.business_date)))
        errors = await self.channel.send_many([r[-1] for r in ready]) if ready else []
        sent: list[tuple[dict[str, Any], Message | None, Callable[[Message | None], Decision[Message]], str]] = []
        for (message, doc, kept, mobile, language, _), error in zip(ready, errors, strict=True):
            if error is not None:
                await self._record_failure(message, doc, error)
                continue
            sent.append((doc, message, record_sent(now=datetime.now(UTC), channel=self.channel.name, language=language,
                                                   text=kept, mobile=mobile), message.correlation_id))
        await self.messages.execute_loaded(sent)
        return len(claimed)

    async def _due(self) -> list[dict[str, Any]]:
        """A pass of the due messages, urgent ones first (the status index)."""
        return await one_batch(self.messages.collection.find(
            {"status": "pending", "next_attempt_at": {"$lte": stamp(datetime.now(UTC))}}
        ).sort([("urgent", -1), ("next_attempt_at", 1)]), self.channel.pass_size)

    async def _due_of(self, ids: list[str], now: datetime, held: dict[str, str]) -> list[dict[str, Any]]:
        """Those of the messages ``ids`` that are due or ``held`` (id -> the lease it was born
        with, still on it), urgent ones first: read by ``_id`` only (the primary key) and
        chosen here, so no plan can take the status index instead."""
        docs = await one_batch(self.messages.collection.find({"_id": {"$in": ids}}), len(ids))
        due = [d for d in docs if d.get("status") == "pending"
               and (d["next_attempt_at"] <= stamp(now) or _born_leased(d, held))]
        return sorted(due, key=lambda d: (not d.get("urgent"), d["next_attempt_at"]))

    async def _claim(self, docs: list[dict[str, Any]], now: datetime, held: dict[str, str]) -> list[dict[str, Any]]:
        """The messages of ``docs`` this pass holds: those born leased to it (``held``) with
        more than ``HELD_MARGIN`` of the lease left as they are; each other one's next attempt
        moved one lease ahead by one guarded write, all in one ``bulk_write``. When another
        replica took some first, the messages are read again and those carrying this pass's
        lease are kept."""
        keep = stamp(now + HELD_MARGIN)
        claim = [d for d in docs if not (_born_leased(d, held) and d["next_attempt_at"] > keep)]
        if not claim:
            return docs
        lease = stamp(now + LEASE)
        writes = [UpdateOne({"_id": d["_id"], "status": "pending", "next_attempt_at": d["next_attempt_at"]},
                            {"$set": {"next_attempt_at": lease}}) for d in claim]
        result = await self.messages.collection.bulk_write(writes, ordered=False)
        lost: set[str] = set()
        if result.modified_count < len(claim):
            ids = [d["_id"] for d in claim]
            ours = {d["_id"] for d in await one_batch(self.messages.collection.find(
                {"_id": {"$in": ids}, "next_attempt_at": lease}, {"_id": 1}), len(ids))}
            lost = set(ids) - ours
        for doc in claim:
            doc["next_attempt_at"] = lease  # as the claim left it: the later write is guarded on it
        return [d for d in docs if d["_id"] not in lost]

    async def _contacts(self, person_ids: set[str]) -> dict[str, tuple[str, str, Language]]:
        """(name, mobile, language) of each person whose contact details are known."""
        if not person_ids:
            return {}
        out = {}
        ids = sorted(person_ids)  # in one batch: a pass of more than 101 would take a getMore
        for doc in await one_batch(self.recipients.find({"_id": {"$in": ids}}), len(ids)):
            recipient = Recipient.model_validate(doc)
            if recipient.mobile and recipient.name:
                out[str(doc["_id"])] = (recipient.name, recipient.mobile, recipient.language)
        return out

    async def _contact(self, person_id: str) -> tuple[str, str, Language] | None:
        """(name, mobile, language) of the person, or None if not known yet."""
        return (await self._contacts({person_id})).get(person_id)

    async def contact_arrived(self, person_id: str) -> int:
        """Make the person's waiting messages due now (their contact details are known); how many."""
        waiting = await self.messages.collection.find(
            {"person_id": person_id, "status": "awaiting_contact"}, {"correlation_id": 1}).to_list()
        for doc in waiting:
            await self.messages.execute(doc["_id"], contact_arrived(now=datetime.now(UTC)),
                                        correlation_id=doc["correlation_id"])
        if waiting:
            self.wake(ids=[doc["_id"] for doc in waiting])  # they waited already
        return len(waiting)

    async def _await_contact(self, message: Message) -> None:
        await self.messages.execute(message.message_id, await_contact(now=datetime.now(UTC)),
                                    correlation_id=message.correlation_id)
        log.info("sms.awaiting_contact", message_id=message.message_id, person_id=message.person_id)
        # The details may have been applied between the look-up and that write, after the
        # event handler looked for waiting messages: look again, so none waits for good.
        if await self._contact(message.person_id) is not None:
            await self.contact_arrived(message.person_id)

    async def _record_failure(self, message: Message, doc: dict[str, Any], err: SmsDeliveryError) -> None:
        """The attempt failed: tried again after its backoff, or failed for good."""
        s = self.settings
        outcome = await self.messages.execute(message.message_id, record_failure(
            now=datetime.now(UTC), channel=self.channel.name, error=str(err), max_attempts=s.sms_max_attempts,
            base=s.sms_backoff_seconds, cap=s.sms_backoff_max_seconds), correlation_id=message.correlation_id,
            loaded=doc)
        log.warning("sms.attempt_failed", message_id=message.message_id, error=str(err),
                    status=outcome.state.status if outcome.state else None)
        state = outcome.state
        if state is not None and state.status == "pending" and state.next_attempt_at is not None:
            self._retry_at(str(doc["_id"]), state.next_attempt_at)

    def _retry_at(self, message_id: str, at: datetime) -> None:
        """Wake for the message when its backoff ends: its retry is told of, not left to the
        next look for every due message (``sms_scan_seconds`` apart)."""
        delay = max(0.0, (at - datetime.now(UTC)).total_seconds())

        def wake() -> None:
            self._retries.discard(handle)
            self.wake(ids=[message_id])
        handle = asyncio.get_running_loop().call_later(delay, wake)
        self._retries.add(handle)

    def _texts(self, message: Message, name: str, language: Language) -> tuple[str, str]:
        """The text for the phone, and the text kept with the message: the same, except that
        a one-time code is opened only for the phone and masked in what is kept."""
        sealed = message.params.get(SEALED_CODE)
        if sealed is None:
            text = render(message.template, language, name, message.params)
            return text, text
        try:
            code = self.codes.open(sealed, bound_to=message.person_id)
        except UndecryptableSecret:
            raise SmsDeliveryError("the one-time code does not open with this service's key "
                                   "(MEDCARD_OTP_KEY differs from identity's)") from None
        return (render(message.template, language, name, {**message.params, "code": code}),
                render(message.template, language, name, {**message.params, "code": MASKED_CODE}))


def _born_leased(doc: dict[str, Any], held: dict[str, str]) -> bool:
    """``doc`` still carries the lease it was created with for this process's dispatcher
    (``held``: id -> that lease): no claim has moved it since."""
    return bool(doc["next_attempt_at"] == held.get(doc["_id"]))
