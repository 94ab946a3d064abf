"""The simulation's drain: what counts as still in flight, and a drain that waits for the
notifications service's last messages (whose NotificationSent events were once written after
the drain had declared every relay idle: ``outboxes_empty: false``)."""

from __future__ import annotations

import asyncio
import copy
from datetime import date
from typing import Any

import pytest

from medcard.simulate.client import UnexpectedAnswer
from medcard.simulate.driver import Driver, in_flight
from shared.settings import Settings

SERVICES = ("bank", "notifications")


def status(*, idle: bool = True, published: int = 0, applied: int = 0) -> dict[str, Any]:
    return {"relay_idle": idle, "published": published, "applied": applied, "dead_lettered": 0,
            "groups": {"medcard.notifications": ["medcard.bank"]}}


def outbox(pending: int = 0) -> dict[str, Any]:
    return {"pending": pending, "by_collection": {"messages": pending}}


QUIET = {s: status() for s in SERVICES}
EMPTY = {s: outbox() for s in SERVICES}


def test_quiet_unchanged_and_empty_is_drained() -> None:
    assert in_flight(QUIET, copy.deepcopy(QUIET), 0, EMPTY, {"medcard.notifications": 0}) == []


@pytest.mark.parametrize(("after", "waiting", "outboxes", "lags", "said"), [
    ({**QUIET, "bank": status(idle=False)}, 0, EMPTY, {}, "relays busy: ['bank']"),
    (QUIET, 1, EMPTY, {}, "notifications has messages still to send"),
    (QUIET, 0, {**EMPTY, "notifications": outbox(1)}, {}, "pending outbox documents: {'notifications'"),
    (QUIET, 0, EMPTY, {"medcard.notifications": 3}, "consumer lag: {'medcard.notifications': 3}"),
    ({**QUIET, "notifications": status(published=1)}, 0, EMPTY, {}, "during the look: ['notifications']"),
    ({**QUIET, "bank": status(applied=1)}, 0, EMPTY, {}, "during the look: ['bank']"),
])
def test_anything_in_flight_is_named(after: dict[str, Any], waiting: int, outboxes: dict[str, Any],
                                     lags: dict[str, int], said: str) -> None:
    [found] = in_flight(QUIET, after, waiting, outboxes, lags)
    assert said in found


class Notifications:
    """The services as the drain sees them: relays idle, consumers caught up, and one message
    still to be sent by the notifications dispatcher, which sends it when ``send`` is called
    (its event then waits in the outbox until ``publish``)."""

    def __init__(self) -> None:
        self.waiting, self.pending, self.published = 1, 0, 0

    def send(self) -> None:
        self.waiting, self.pending = 0, 1

    def publish(self) -> None:
        self.pending, self.published = 0, self.published + 1

    async def drain_status(self, services: Any = None) -> dict[str, dict[str, Any]]:
        return {s: status(published=self.published if s == "notifications" else 0) for s in SERVICES}

    async def messages_waiting(self) -> int:
        return self.waiting

    async def outboxes(self, services: Any = None) -> dict[str, dict[str, Any]]:
        return {s: outbox(self.pending if s == "notifications" else 0) for s in SERVICES}


def driver(eco: Notifications) -> Driver:
    d = Driver(eco, None, None, None, Settings(), date(2026, 1, 1))  # type: ignore[arg-type]

    async def no_kafka() -> None: ...

    async def caught_up(groups: dict[str, list[str]]) -> dict[str, int]:
        return dict.fromkeys(groups, 0)

    d._kafka_clients = no_kafka  # type: ignore[method-assign]
    d._lags = caught_up  # type: ignore[method-assign]
    return d


async def test_the_drain_waits_for_the_last_message_and_its_event() -> None:
    eco = Notifications()

    async def dispatcher() -> None:
        await asyncio.sleep(0.2)
        eco.send()
        await asyncio.sleep(0.2)
        eco.publish()

    sending = asyncio.create_task(dispatcher())
    await driver(eco).drain(timeout=5)
    assert sending.done() and (eco.waiting, eco.pending, eco.published) == (0, 0, 1)


async def test_a_drain_that_does_not_end_says_what_is_in_flight() -> None:
    with pytest.raises(UnexpectedAnswer, match=r"did not drain in 0 s: notifications has messages still to send"):
        await driver(Notifications()).drain(timeout=0.3)


class Backlog(Notifications):
    """A service working off a backlog: each look sees another event published, for ``left`` looks."""

    def __init__(self, left: int) -> None:
        super().__init__()
        self.waiting, self.left = 0, left

    async def drain_status(self, services: Any = None) -> dict[str, dict[str, Any]]:
        if self.left:
            self.left -= 1
            self.published += 1
        return await super().drain_status(services)


async def test_a_drain_waits_past_its_timeout_while_the_services_work_off_a_backlog() -> None:
    eco = Backlog(left=14)  # seven looks, their pauses (20 ms doubling to 500 ms) longer than the timeout
    await driver(eco).drain(timeout=1.0)
    assert eco.left == 0


async def test_a_drain_that_sees_nothing_move_still_ends_at_its_timeout() -> None:
    eco = Notifications()  # its message is never sent: nothing moves
    with pytest.raises(UnexpectedAnswer, match="did not drain in 1 s"):
        await driver(eco).drain(timeout=1.0)


class Clock:
    """Identity's clock as the set-up sees it (the only call it makes itself here)."""

    logged_in = False

    async def login_operator(self) -> None:
        self.logged_in = True

    async def call(self, service: str, method: str, path: str, **_: Any) -> dict[str, Any]:
        assert (service, method, path) == ("identity", "POST", "/v1/clock/advance")
        return {"date": "2026-01-01"}


async def test_set_up_opens_accounts_chunk_by_chunk_while_their_codes_are_valid(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Codes are valid for five minutes and 100,000 registrations take half an hour: each chunk
    of persons opens its online accounts (after a drain: their SMS sent) before the next one
    registers. Cards and passwords follow for everyone."""
    from types import SimpleNamespace

    from medcard.simulate import driver as driver_module
    from medcard.simulate.driver import Holder

    monkeypatch.setattr(driver_module, "SET_UP_CHUNK", 4)
    persons = [SimpleNamespace(index=i, online=i % 3 != 0) for i in range(10)]
    clock = Clock()
    d = Driver(clock, SimpleNamespace(units=[], persons=persons), None, None,  # type: ignore[arg-type]
               Settings(), date(2026, 1, 1))
    steps: list[str] = []

    async def log_staff_in() -> None:
        steps.append("staff")

    async def register(p: Any) -> None:
        steps.append(f"register {p.index}")
        d.holders[p.index] = Holder(person_id=f"P{p.index}", id_number="", pin="000000")

    async def open_account(p: Any) -> None:
        steps.append(f"open {p.index}")

    async def drain(**_: Any) -> None:
        steps.append("drain")

    async def other(what: str, _item: Any) -> None:
        steps.append(what)

    d.log_staff_in = log_staff_in  # type: ignore[method-assign]
    d._register, d._open_account, d.drain = register, open_account, drain  # type: ignore[method-assign]
    d._issue_card = lambda p: other("card", p)  # type: ignore[method-assign]
    d._set_pin = lambda h: other("pin", h)  # type: ignore[method-assign]
    await d.set_up()

    assert steps[:steps.index("card")] == [
        "staff", "register 0", "register 1", "register 2", "register 3", "drain", "open 1", "open 2",
        "register 4", "register 5", "register 6", "register 7", "drain", "open 4", "open 5", "open 7",
        "register 8", "register 9", "drain", "open 8"]
    assert steps[steps.index("card"):] == ["card"] * 10 + ["drain"] + ["pin"] * 10
    assert clock.logged_in and d.today == date(2026, 1, 1)
