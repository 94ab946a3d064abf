"""The one vocabulary every service uses to tell the state of a card.

Every card view of every service (cards: ``GET /v1/cards/{card_number}``; bank: the
``cards`` of ``GET /v1/accounts/{person_id}``; notifications: the ``cards`` of
``GET /v1/recipients/{person_id}``) names a card ``card_number`` and gives its ``state``
in these words, so the three can be compared one to one (``medcard card``, and the
simulation's ``projections_agree``):

| state                | meaning                                                                     |
|----------------------|-----------------------------------------------------------------------------|
| `pending_activation` | issued, its password never set: it cannot buy yet                           |
| `active`             | its password is set and it was never reported lost: it buys                  |
| `lost`               | reported lost (online, at the bank, or by the bank's stamp): blocked for good |
| `cancelled`          | replaced by a new card (collected) or closed: it never works again           |

A card moves only forward: pending_activation -> active -> lost -> cancelled, and a card
may skip a step (a card lost before its password was set; a broken card, never reported
lost, replaced). Where a replacement stands is not a state of the card: the cards service
tells it apart (``replacement_status``).
"""

from __future__ import annotations

from typing import Literal

CardState = Literal["pending_activation", "active", "lost", "cancelled"]
CARD_STATES: tuple[CardState, ...] = ("pending_activation", "active", "lost", "cancelled")
STATE_DESCRIPTION = ("The card's state, in the vocabulary every service shares: pending_activation (password "
                     "never set), active, lost (reported lost: blocked), cancelled (replaced or closed)")
