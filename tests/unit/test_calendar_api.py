"""GET /v1/calendar (issue 17: the business calendar was invisible): every service lists the
working days and public holidays, with names, that it counts with; no token needed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.bank.app import create as create_bank
from services.cards.app import create as create_cards
from services.identity.app import create as create_identity
from services.identity.config import IdentitySettings
from services.notifications.app import create as create_notifications
from shared.settings import Settings

SETTINGS = {"environment": "test", "namespace": "calendar-api", "holidays": "2027-02-06=Spring Festival"}
APPS = {
    "identity": lambda: create_identity(IdentitySettings(**SETTINGS,  # type: ignore[arg-type]
                                                         identity_bootstrap_operator_password="doc-only-pw")),
    "cards": lambda: create_cards(Settings(**SETTINGS)),  # type: ignore[arg-type]
    "bank": lambda: create_bank(Settings(**SETTINGS)),  # type: ignore[arg-type]
    "notifications": lambda: create_notifications(Settings(**SETTINGS)),  # type: ignore[arg-type]
}


async def ask(service: str, **query: str) -> httpx.Response:
    """The route in process, without starting the service (it reads no database)."""
    transport = httpx.ASGITransport(app=APPS[service]())
    async with httpx.AsyncClient(transport=transport, base_url="http://calendar") as client:
        return await client.get("/v1/calendar", params=query)


@pytest.mark.parametrize("service", list(APPS))
async def test_every_service_lists_the_working_days_and_holidays_with_names(service: str) -> None:
    answer = await ask(service, **{"from": "2027-05-01", "to": "2027-05-31"})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert (body["from"], body["to"], body["working_days"]) == ("2027-05-01", "2027-05-31", 18)
    assert [h["date"] for h in body["holidays"]] == [f"2027-05-0{d}" for d in range(1, 6)]
    assert {h["name"] for h in body["holidays"]} == {"Labour Day"}
    assert body["days"][5] == {"date": "2027-05-06", "weekday": "Thursday", "working_day": True, "holiday": None}
    assert "15th working day" in body["rule"]


async def test_a_configured_holiday_is_listed_with_its_name() -> None:
    body = (await ask("cards", **{"from": "2027-02-06", "to": "2027-02-06"})).json()
    assert body["holidays"] == [{"date": "2027-02-06", "name": "Spring Festival"}]


@pytest.mark.parametrize(("query", "why"), [
    ({"from": "2027-05-31", "to": "2027-05-01"}, "is before"),
    ({"from": "2027-01-01", "to": "2028-12-31"}, "at most 366 days"),
    ({"from": "2027-05-01"}, "query.to"),
    ({"from": "2027-02-30", "to": "2027-03-01"}, "query.from"),
])
async def test_a_bad_range_is_a_422_saying_why(query: dict[str, str], why: str) -> None:
    answer = await ask("cards", **query)
    assert answer.status_code == 422 and why in answer.json()["detail"], answer.text
