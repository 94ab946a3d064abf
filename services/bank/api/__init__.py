"""The bank's HTTP API, one router per area."""

from . import accounts, cards, pos, stamps

TITLE = "Bank"
DESCRIPTION = """The agent bank of the medical insurance card. It keeps one personal medical
account per insured person (opened when the first card is issued, moved with its balance to a
replacement card), the card password, POS authorisation for designated hospitals and pharmacies
with ISO 8583-style response codes, balance inquiries by channel, statements (JSON or CSV),
the stamping of replacement receipts, and the monthly transfer of paid contributions.
It learns about persons, cards and the business calendar only from events."""
ROUTERS = [pos.merchants, pos.pos, cards.router, accounts.router, stamps.router]
