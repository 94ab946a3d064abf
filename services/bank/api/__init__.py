"""The bank's HTTP API, one router per area."""

from . import accounts, cards, pos, stamps

routers = [pos.merchants, pos.pos, cards.router, accounts.router, stamps.router]
