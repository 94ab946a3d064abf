"""The one shape of a service: a subscription's table decides which events it applies and
which topics it reads; every service's app is built from a ``ServiceSpec``."""

from __future__ import annotations

import asyncio
from datetime import date

from shared.app import Subscription
from shared.topics import TOPICS
from shared.events import BusinessDateAdvanced, CardLost, CloudEvent, PersonRegistered, new_event


def _event(data: object) -> CloudEvent:
    return new_event(data, source="test", subject="P1", partitionkey="P1", sequence=1, correlationid="c1")  # type: ignore[arg-type]


LOST = CardLost(person_id="P1", card_number="6216610000000000017", channel="online", voucher="V1",
                business_date=date(2026, 3, 2))
DAY = BusinessDateAdvanced(date=date(2026, 3, 3), previous_date=date(2026, 3, 2))


def test_the_table_decides_the_topics_and_the_handler_each_event_meets() -> None:
    seen: list[tuple[str, str]] = []

    async def on_lost(ctx: str, event: CloudEvent) -> None:
        seen.append((ctx, "lost"))

    async def on_day(ctx: str, event: CloudEvent) -> None:
        seen.append((ctx, "day"))

    sub: Subscription[str] = Subscription({CardLost: on_lost, BusinessDateAdvanced: on_day})
    assert sorted(sub.services()) == ["cards", "clock"]
    assert sub.event_types() == sorted([CardLost.event_type(), BusinessDateAdvanced.event_type()])
    handle = sub.handler("ctx")

    async def run() -> None:
        await handle(_event(LOST))
        await handle(_event(DAY))
        await handle(_event(PersonRegistered(person_id="P1", unit_id="U1", name="Li", id_number_digest="d",
                                             id_number_masked="1101**********0017", mobile="13800000000")))

    asyncio.run(run())
    assert seen == [("ctx", "lost"), ("ctx", "day")], "an event outside the table is passed over"
    assert sub.batch_handler("ctx") is None


def test_every_event_reads_every_topic_and_comes_before_the_types_own_handler() -> None:
    seen: list[str] = []

    async def on_lost(ctx: None, event: CloudEvent) -> None:
        seen.append("lost")

    async def log(ctx: None, event: CloudEvent) -> None:
        seen.append(event.type)

    sub: Subscription[None] = Subscription({CardLost: on_lost}, every_event=log)
    assert sub.services() == list(TOPICS)
    asyncio.run(sub.handler(None)(_event(LOST)))
    assert seen == [CardLost.event_type(), "lost"]


def test_the_four_app_modules_differ_only_in_names() -> None:
    import ast
    from pathlib import Path

    services = {"identity": "Identity", "cards": "Cards", "bank": "Bank", "notifications": "Notifications"}
    shapes = set()
    for name, context in services.items():
        tree = ast.parse((Path(__file__).resolve().parents[2] / "services" / name / "app.py").read_text())
        tree.body = [node for node in tree.body if not (isinstance(node, ast.Expr) and isinstance(node.value,
                                                                                                 ast.Constant))]
        shapes.add(ast.dump(tree).replace(repr(name), "'NAME'").replace(repr(context), "'CONTEXT'"))
    assert len(shapes) == 1, "an app.py wires its service its own way: wiring belongs in deps.py and handlers.py"


def test_no_route_of_any_service_waits_for_a_worker_thread_for_its_dependencies() -> None:
    """FastAPI runs a plain-function dependency in a worker thread: a thread hop for every
    request (a tenth of the bank's CPU under the simulation, when the context was one)."""
    import importlib
    import inspect

    from fastapi.dependencies.models import Dependant
    from fastapi.routing import APIRoute

    def sync_calls(dependant: Dependant) -> list[str]:
        found = []
        for sub in dependant.dependencies:
            call = sub.call
            target = call if inspect.isfunction(call) else getattr(call, "__call__", call)  # noqa: B004
            if not inspect.iscoroutinefunction(target):
                found.append(getattr(call, "__qualname__", repr(call)))
            found += sync_calls(sub)
        return found

    checked = 0
    for service in ("identity", "cards", "bank", "notifications"):
        api = importlib.import_module(f"services.{service}.api")
        for router in api.ROUTERS:
            for route in router.routes:
                if isinstance(route, APIRoute):
                    checked += 1
                    assert sync_calls(route.dependant) == [], f"{service} {route.path}"
    assert checked > 40
