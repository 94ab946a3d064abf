"""The SMS gateway simulator, for operators: which channel is in use, failures on demand,
what it delivered."""

from __future__ import annotations

from fastapi import APIRouter

from shared.errors import errors

from .. import handlers
from ..channels import SmsGatewaySimulator
from ..deps import Limit, NotificationsDep, Operator
from ..schemas import SmsFailuresUpdate, SmsGatewayState, SmsOutbox, SmsPublic

router = APIRouter(prefix="/v1/sms-gateway", tags=["sms gateway"], responses=errors(401, 403))


@router.get("")
async def gateway_state(_: Operator, ctx: NotificationsDep) -> SmsGatewayState:
    """The SMS channel in use and how many sends the simulator will still fail (operator)."""
    fail_next = ctx.channel.fail_next if isinstance(ctx.channel, SmsGatewaySimulator) else 0
    return SmsGatewayState(channel=ctx.channel.name, fail_next=fail_next)


@router.post("/failures", responses=errors(409, 422))
async def fail_next_sends(body: SmsFailuresUpdate, _: Operator, ctx: NotificationsDep) -> SmsGatewayState:
    """Make the simulator fail the next N sends, to watch retries and failures (operator)."""
    simulator = await handlers.fail_next_sends(ctx, body.count)
    return SmsGatewayState(channel=simulator.name, fail_next=simulator.fail_next)


@router.get("/outbox", responses=errors(409, 422))
async def gateway_outbox(_: Operator, ctx: NotificationsDep, person_id: str | None = None,
                         limit: Limit = 100) -> SmsOutbox:
    """The SMS the simulator delivered, oldest first (operator)."""
    data = [SmsPublic.of(d) for d in await ctx.simulator().sent_to(person_id, limit)]
    return SmsOutbox(data=data, count=len(data))
