"""Write or check the committed contract (``contract/``) with what only the layer above the
services knows: which events each service applies, read from their handler tables
(``services/<name>/handlers.py``, through each app's ``SERVICE``).

    python -m medcard.contract          # write the files; refuses a breaking change
    python -m medcard.contract --check  # exit 1 when the files are stale or a change breaks
"""

from __future__ import annotations

import importlib
import sys

from shared.contract.generate import main as generate
from shared.events import REGISTRY

SERVICES = ("identity", "cards", "bank", "notifications")


def consumers() -> dict[str, list[str]]:
    """Service -> the event types its consumers apply (every type for one that sees every
    event, as the notifications' webhooks do)."""
    out: dict[str, list[str]] = {}
    for name in SERVICES:
        spec = getattr(importlib.import_module(f"services.{name}.app"), "SERVICE", None)
        types: set[str] = set()
        for subscription in getattr(spec, "consumers", ()):
            types |= set(REGISTRY) if subscription.every_event is not None else set(subscription.event_types())
        if types:
            out[name] = sorted(types)
    return out


def main(argv: list[str] | None = None) -> int:
    return generate(argv, consumers())


if __name__ == "__main__":
    sys.exit(main())
