"""The cards service's projections of other services' events (rebuildable from the topics:
``medcard projections rebuild cards``): the business date, from the clock topic. Everything
else it keeps is the cardholders' aggregates, changed by commands as well as by events."""

from __future__ import annotations

from shared.clock import CLOCK_PROJECTION
from shared.rebuild import Projection

PROJECTIONS: list[Projection] = [CLOCK_PROJECTION]
