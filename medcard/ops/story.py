"""The story of one card: every event about it or its holder, across all topics, in order;
then what each service holds about it now."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from shared.settings import Settings
from shared.topics import all_topic_names

from .reader import read_to_end
from .state import ServiceState, disagreements, service_states
from .views import EventLine, EventView


class StoryEvent(BaseModel):
    about: Literal["card", "holder"] = Field(description="card: the event names the card; holder: its holder")
    event: EventLine


class CardStory(BaseModel):
    card_number: str
    holder: str | None = Field(description="The person holding the card, from the first event about it")
    events: list[StoryEvent]


def build_story(card_number: str, views: list[EventView]) -> CardStory:
    """Pick the card's events and its holder's from ``views`` and order them by event time."""
    readable = sorted((v for v in views if v.envelope is not None),
                      key=lambda v: (v.time or "", v.sequence, v.topic, v.partition, v.offset))
    first = next((v for v in readable if card_number in v.card_numbers), None)
    holder = (str(first.data.get("person_id") or first.person) if first else None) or None
    events = []
    for view in readable:
        if card_number in view.card_numbers:
            events.append(StoryEvent(about="card", event=view.line()))
        elif holder and holder in view.persons:
            events.append(StoryEvent(about="holder", event=view.line()))
    return CardStory(card_number=card_number, holder=holder, events=events)


async def card_story(settings: Settings, card_number: str) -> CardStory:
    """Read every main topic to its end and tell the card's story."""
    records = await read_to_end(settings, all_topic_names(settings.namespace, with_dlq=False), missing_ok=True)
    return build_story(card_number, [EventView.of(r) for r in records])


class CardReport(CardStory):
    states: list[ServiceState]
    disagreements: list[str] = Field(description="Where the services' current views of the card differ")


async def card_report(settings: Settings, card_number: str, urls: dict[str, str]) -> CardReport:
    """The card's story, the state each service holds now, and their disagreements."""
    story = await card_story(settings, card_number)
    states = await service_states(settings, urls, card_number, story.holder)
    return CardReport(**story.model_dump(), states=states, disagreements=disagreements(states))
