"""The bank service: personal medical accounts, card passwords, POS authorisation,
balances and statements, receipt stamps and the monthly transfer.

Run with ``uvicorn --factory services.bank.app:create``."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from shared.clock import CLOCK_GROUPS
from shared.consumer import ConsumerRunner
from shared.service import ServiceRuntime, create_app
from shared.settings import Settings
from shared.topics import topic_for_service

from .api import routers
from .context import Bank
from .handlers import on_clock, on_identity_or_cards, on_identity_or_cards_batch

DESCRIPTION = """The agent bank of the medical insurance card. It keeps one personal medical
account per insured person (opened when the first card is issued, moved with its balance to a
replacement card), the card password, POS authorisation for designated hospitals and pharmacies
with ISO 8583-style response codes, balance inquiries by channel, statements (JSON or CSV),
the stamping of replacement receipts, and the monthly transfer of paid contributions.
It learns about persons, cards and the business calendar only from events."""


def create(settings: Settings | None = None) -> FastAPI:
    runtime = ServiceRuntime("bank", settings)
    bank = Bank.wire(runtime)
    runtime.setup_hooks.append(bank.setup)
    runtime.business_date = bank.clock.current
    runtime.consume(["identity", "cards"], partial(on_identity_or_cards, bank),
                    batch_handler=partial(on_identity_or_cards_batch, bank))
    # The month end runs in its own consumer group, so a long transfer never delays a loss report.
    # One MonthEnded credits every account in one handler call: at 100,000 accounts that is
    # longer than Kafka's default 5 minutes between polls, after which the group would evict
    # the consumer and replay the batch. Its limit is an hour (a dead process is still found
    # by the session timeout; only a handler stuck for an hour goes unnoticed that long).
    runtime.consumers.append(ConsumerRunner(
        runtime.settings, service="bank", topics=[topic_for_service("clock", runtime.settings.namespace)],
        handler=partial(on_clock, bank), group_id=runtime.settings.group_id(CLOCK_GROUPS["bank"]),
        max_poll_interval_ms=3_600_000))
    app = create_app(runtime, title="Bank", description=DESCRIPTION, routers=routers)
    app.state.bank = bank
    return app
