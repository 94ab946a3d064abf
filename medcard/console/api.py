"""The console's API: session, live stream, card story, lag, dead letters. Operators only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from medcard.ops import dlq
from medcard.ops.filters import EventFilter, parse_start, topics_of
from medcard.ops.lag import GroupLag, consumer_lag
from medcard.ops.story import CardReport, card_report
from shared.auth import Role
from shared.settings import Settings

from .auth import Operator, forget, operator_only, remember, staff_login
from .overview import overview_stream
from .stream import event_stream

session = APIRouter(prefix="/api", tags=["session"])
watch = APIRouter(prefix="/api", tags=["watch"])
Services = Annotated[list[str] | None, Query(alias="service", description="Owning service of a topic (repeatable)")]


class ConsoleLogin(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"token": "eyJhbGciOiJIUzI1NiJ9..."},
                                                              {"username": "ops-zhang", "password": "s3cret-pass"}]})
    token: str | None = Field(None, description="An operator access token issued by identity")
    username: str | None = Field(None, max_length=32)
    password: str | None = Field(None, max_length=128)

    @model_validator(mode="after")
    def _one_way(self) -> ConsoleLogin:
        if not self.token and not (self.username and self.password):
            raise ValueError("give a token, or a username and a password")
        return self


class SessionPublic(BaseModel):
    sub: str
    role: Role


class ReplayRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"refs": ["0:3"], "again": False}]})
    refs: list[str] | None = Field(None, description="partition:offset of each dead letter; null for all of them")
    again: bool = Field(False, description="Replay even those replayed before")


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


@session.post("/login")
async def login(body: ConsoleLogin, request: Request, response: Response) -> SessionPublic:
    """Open a session with an operator token, or a staff username and password checked by identity."""
    settings = _settings(request)
    token = body.token or await staff_login(request.app.state.urls["identity"], body.username or "",
                                            body.password or "")
    principal = operator_only(settings, token)
    remember(response, settings, token)
    return SessionPublic(sub=principal.sub, role=principal.role)


@session.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(response: Response) -> None:
    """Close the session (forget the cookie)."""
    forget(response)


@session.get("/session")
async def whoami(principal: Operator) -> SessionPublic:
    """The operator this session belongs to."""
    return SessionPublic(sub=principal.sub, role=principal.role)


@watch.get("/stream", response_class=StreamingResponse,
           responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}})
async def stream(
    request: Request, _: Operator, service: Services = None,
    event_type: Annotated[list[str] | None, Query(alias="type", description="CardLost or a full type")] = None,
    card: str | None = None, person: str | None = None, correlation: str | None = None,
    start: Annotated[str, Query(alias="from", description="now, start, or an ISO 8601 time")] = "now",
    token: Annotated[str | None, Query(description="The operator token, for EventSource")] = None,
) -> StreamingResponse:
    """Live events as server-sent events, filtered by type, card, person or correlation id."""
    settings = _settings(request)
    topics, begin = topics_of(settings.namespace, service), parse_start(start)
    match = EventFilter(types=tuple(t for t in event_type or () if t), card=card or None, person=person or None,
                        correlation=correlation or None)
    return StreamingResponse(event_stream(settings, topics, begin, match), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@watch.get("/overview", response_class=StreamingResponse,
           responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}})
async def overview(
    request: Request, _: Operator,
    every: Annotated[float, Query(ge=0.5, le=60, description="Seconds between snapshots")] = 2.0,
) -> StreamingResponse:
    """The first screen's figures as server-sent events: a ``snapshot`` every few seconds of
    the records each topic holds, each group's lag, the dead letters and each service's health."""
    return StreamingResponse(overview_stream(_settings(request), request.app.state.urls, every),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@watch.get("/cards/{card_number}/story")
async def story(card_number: str, request: Request, _: Operator) -> CardReport:
    """One card's events across all services, the state each holds now, and disagreements."""
    return await card_report(_settings(request), card_number, request.app.state.urls)


@watch.get("/lag")
async def lag(request: Request, _: Operator, service: Services = None) -> list[GroupLag]:
    """Consumer lag per service group and partition."""
    return await consumer_lag(_settings(request), service)


@watch.get("/dlq")
async def dead_letters(request: Request, _: Operator, service: Services = None) -> list[dlq.DeadLetter]:
    """What sits in the dead-letter topics, and why."""
    return await dlq.dead_letters(_settings(request), service)


@watch.get("/dlq/{topic}/{ref}")
async def dead_letter(topic: str, ref: str, request: Request, _: Operator) -> dlq.DeadLetterDetail:
    """One dead letter in full (ref: partition:offset)."""
    return await dlq.show(_settings(request), topic, ref)


@watch.post("/dlq/{topic}/replay")
async def replay(topic: str, body: ReplayRequest, request: Request, _: Operator) -> dlq.ReplayReport:
    """Republish dead letters to their original topic (each once, unless again)."""
    return await dlq.replay(_settings(request), topic, body.refs, again=body.again)
