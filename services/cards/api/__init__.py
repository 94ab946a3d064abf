"""The cards service's HTTP API, one router per area."""

from . import cards, losses, replacements

routers = [cards.router, losses.router, replacements.router]
