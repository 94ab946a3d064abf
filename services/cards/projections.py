"""The cards service's projections of other services' events (rebuildable from the topics:
``medcard projections rebuild cards``): the business date, from the clock topic, and the
tokens refused after a lock or closure of an online account, from the identity topic.
Everything else it keeps is the cardholders' aggregates, changed by commands as well as by
events."""

from __future__ import annotations

from shared.clock import CLOCK_PROJECTION
from shared.projection import Projection
from shared.revocations import REVOCATION_PROJECTION

PROJECTIONS: list[Projection] = [CLOCK_PROJECTION, REVOCATION_PROJECTION]
