"""Set-up shared by the loss-to-block and POS rows: cardholders with active cards,
made through the services' HTTP APIs exactly as the agency, the bank and the
cardholders do (registered, card issued, password set), funded by a real month end."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from medcard.simulate.client import Ecosystem, once_known
from shared.ids import make_id_number, new_id

from .common import gather_limited

MERCHANT = "MBENCH0001"
START = date(2026, 1, 30)
"""The clock starts here, so one day later a month (2026-01) ends and funds the POS cards."""
MONTH = "2026-01"
FUNDING_FEN = 1_000_000
SETUP_CONCURRENCY = 24


@dataclass
class Holder:
    index: int
    id_number: str
    person_id: str = ""
    card: str = ""
    pin: str = ""


@dataclass
class Cardholders:
    eco: Ecosystem
    loss: list[Holder] = field(default_factory=list)
    """Cards that will be reported lost (funded too: only the block refuses the thief's purchase)."""
    pos: list[Holder] = field(default_factory=list)
    """Funded cards for the POS load."""
    unit_id: str = ""


def _person(i: int) -> Holder:
    birth = date(1965, 1, 1) + timedelta(days=i // 1000)
    return Holder(index=i, id_number=make_id_number("110105", birth, i % 1000), pin=f"{(i * 7919) % 1_000_000:06d}")


async def set_up(eco: Ecosystem, *, loss_cards: int, pos_cards: int) -> Cardholders:
    """Clock, staff, one designated hospital, the cardholders and their contributions
    (``fund`` then crosses the month end, once the bank has recorded them)."""
    world = Cardholders(eco)
    await eco.call("identity", "POST", "/v1/clock/advance", who="operator",
                   json={"start": START.isoformat(), "days": 1})
    password = "bench-staff-password-1"
    await eco.create_staff("clerk", "clerk", password)
    await eco.create_staff("teller", "teller", password)
    await eco.call("bank", "POST", "/v1/merchants", who="operator", expect=(201, 409),
                   json={"merchant_id": MERCHANT, "name": "Bench Hospital", "kind": "hospital", "designated": True})
    await eco.create_staff("pos-bench", "merchant", password, MERCHANT)
    world.unit_id = (await eco.call("identity", "POST", "/v1/units", who="clerk",
                                    json={"name": "Bench Unit Co."}))["unit_id"]
    holders = [_person(i) for i in range(loss_cards + pos_cards)]
    await gather_limited(holders, lambda h: _register(world, h), SETUP_CONCURRENCY)
    await gather_limited(holders, lambda h: _issue_card(eco, h), SETUP_CONCURRENCY)
    world.loss, world.pos = holders[:loss_cards], holders[loss_cards:]
    for chunk in range(0, len(holders), 1000):
        items = [{"person_id": h.person_id, "amount_fen": FUNDING_FEN} for h in holders[chunk:chunk + 1000]]
        await eco.call("identity", "POST", "/v1/contributions", who="clerk",
                       json={"unit_id": world.unit_id, "month": MONTH, "items": items})
    return world


async def fund(world: Cardholders) -> None:
    """Cross the month end: the bank credits every card's contribution."""
    await world.eco.call("identity", "POST", "/v1/clock/advance", who="operator", json={"days": 1})


async def _register(world: Cardholders, h: Holder) -> None:
    person = await world.eco.call("identity", "POST", "/v1/persons", who="clerk", json={
        "name": f"Bench Person {h.index}", "id_number": h.id_number, "mobile": f"139{h.index:08d}",
        "household_number": f"HB{h.index:08d}", "unit_id": world.unit_id, "language": "en"})
    h.person_id = person["person_id"]


async def _issue_card(eco: Ecosystem, h: Holder) -> None:
    # The cards service learns of the person from PersonRegistered: retry until it has.
    card = await once_known(lambda: eco.call("cards", "POST", "/v1/cards", who="clerk",
                                             json={"person_id": h.person_id}), f"person {h.person_id}")
    h.card = card["card_number"]
    # The bank learns of the card from CardIssued: retry until it has.
    await once_known(lambda: eco.call("bank", "PUT", f"/v1/cards/{h.card}/password", who="teller",
                                      json={"pin": h.pin, "channel": "counter", "id_number": h.id_number}),
                    f"card {h.card}")


def pos_body(h: Holder, amount_fen: int = 1) -> dict[str, Any]:
    """A purchase at the bench's hospital, numbered anew (a new transaction, never a resend)."""
    return {"transaction_id": new_id("T"), "card_number": h.card, "pin": h.pin, "merchant_id": MERCHANT,
            "amount_fen": amount_fen, "kind": "purchase"}
