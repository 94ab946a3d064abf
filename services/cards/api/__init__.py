"""The cards service's HTTP API, one router per area."""

from . import cards, losses, replacements

TITLE = "Cards service"
DESCRIPTION = ("The medical insurance card lifecycle: issue, activation, loss reports online and at the "
               "bank, replacement cards from application to hand-over.")
ROUTERS = [cards.router, losses.router, replacements.router]
