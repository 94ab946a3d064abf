"""``GET /v1/calendar``: the business calendar every service counts with, served by every
service (it is built from the same code, ``shared.calendar``, and the service's own
settings), so the service that computes a date (cards: a replacement's ``ready_on``) can be
asked which days it counted. Public: it holds nobody's data."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from .calendar import BusinessCalendar
from .domain import Invalid
from .errors import errors

MAX_DAYS = 366
"""The longest range one call lists."""
RULE = ("Working days are Monday to Friday except public holidays: the fixed ones (New Year's Day 1 January, "
        "Labour Day 1-5 May, National Day 1-7 October) and those configured in MEDCARD_HOLIDAYS (the lunar "
        "ones, e.g. the Spring Festival, which move every year). Weekend make-up working days are not modelled. "
        "'N working days after D' is the N-th working day after D, D itself never counting: a replacement card "
        "is ready on the 15th working day after the bank's stamp.")


class CalendarDayPublic(BaseModel):
    date: date
    weekday: str = Field(description="Monday ... Sunday")
    working_day: bool
    holiday: str | None = Field(description="The public holiday's name, if the day is one")


class HolidayPublic(BaseModel):
    date: date
    name: str


class CalendarPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "from": "2027-05-01", "to": "2027-05-07", "working_days": 2,
        "holidays": [{"date": f"2027-05-0{d}", "name": "Labour Day"} for d in range(1, 6)],
        "days": [
            {"date": "2027-05-01", "weekday": "Saturday", "working_day": False, "holiday": "Labour Day"},
            {"date": "2027-05-02", "weekday": "Sunday", "working_day": False, "holiday": "Labour Day"},
            {"date": "2027-05-03", "weekday": "Monday", "working_day": False, "holiday": "Labour Day"},
            {"date": "2027-05-04", "weekday": "Tuesday", "working_day": False, "holiday": "Labour Day"},
            {"date": "2027-05-05", "weekday": "Wednesday", "working_day": False, "holiday": "Labour Day"},
            {"date": "2027-05-06", "weekday": "Thursday", "working_day": True, "holiday": None},
            {"date": "2027-05-07", "weekday": "Friday", "working_day": True, "holiday": None},
        ],
        "rule": RULE,
    }]})

    start: date = Field(alias="from")
    end: date = Field(alias="to")
    working_days: int = Field(description="How many days of the range are working days")
    holidays: list[HolidayPublic] = Field(description="The public holidays in the range, with their names")
    days: list[CalendarDayPublic] = Field(description="Every day of the range, in order")
    rule: str = Field(description="How working days are told, and how the services count them")


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def calendar_view(calendar: BusinessCalendar, start: date, end: date) -> CalendarPublic:
    """The days of [start, end] (at most MAX_DAYS of them) as the API shows them."""
    if end < start:
        raise Invalid(f"query.to: {end} is before query.from {start}")
    if (end - start).days + 1 > MAX_DAYS:
        raise Invalid(f"query.to: at most {MAX_DAYS} days in one call, asked for {(end - start).days + 1}")
    days = calendar.days(start, end)
    return CalendarPublic.model_validate({
        "from": start, "to": end, "working_days": sum(d.working_day for d in days),
        "holidays": [HolidayPublic(date=d.date, name=d.holiday) for d in days if d.holiday],
        "days": [CalendarDayPublic(date=d.date, weekday=WEEKDAYS[d.date.weekday()], working_day=d.working_day,
                                   holiday=d.holiday) for d in days],
        "rule": RULE,
    })


def calendar_router(calendar: BusinessCalendar) -> APIRouter:
    """The route serving ``calendar``."""
    router = APIRouter(prefix="/v1", tags=["calendar"])

    @router.get("/calendar", response_model=CalendarPublic, response_model_by_alias=True, responses=errors(422))
    async def get_calendar(
        start: Annotated[date, Query(alias="from", description="First day (ISO date)")],
        end: Annotated[date, Query(alias="to", description=f"Last day (ISO date), at most {MAX_DAYS} days on")],
    ) -> CalendarPublic:
        """The business calendar: working days and public holidays (with names) from one date to another."""
        return calendar_view(calendar, start, end)

    return router
