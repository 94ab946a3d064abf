"""Access: online accounts of insured persons, staff users, and the logins that issue tokens."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from shared.service import correlation_id

from .. import handlers
from ..deps import Clerk, IdentityDep, Operator
from ..schemas import (
    AccountClosed,
    AccountCodeRequest,
    AccountCodeSent,
    AccountCreate,
    AccountPublic,
    AccountRecovery,
    Login,
    StaffCreate,
    StaffLogin,
    StaffPublic,
    TokenPublic,
    errors,
)

router = APIRouter(prefix="/v1", tags=["access"])


@router.post("/accounts/codes", status_code=status.HTTP_202_ACCEPTED, response_model=AccountCodeSent,
             responses=errors(422, 429))
async def send_account_code(body: AccountCodeRequest, request: Request, ctx: IdentityDep) -> AccountCodeSent:
    """Opening an online account, step 1: a one-time code goes by SMS to the mobile registered
    for the ID number. The same answer, in the same time, whether or not name and ID match."""
    return await handlers.send_account_code(ctx, body, request, correlation_id(request))


@router.post("/accounts", status_code=status.HTTP_201_CREATED, response_model=AccountPublic,
             responses=errors(409, 422, 429))
async def create_account(body: AccountCreate, request: Request, ctx: IdentityDep) -> AccountPublic:
    """Opening an online account, step 2: name and ID number as registered, and the code sent
    to the registered mobile. Every refusal before the code is checked is the same answer."""
    return await handlers.create_account(ctx, body, request, correlation_id(request))


@router.post("/persons/{person_id}/account/recovery", response_model=AccountClosed,
             responses=errors(401, 403, 404, 409, 422))
async def recover_account(person_id: str, body: AccountRecovery, request: Request, ctx: IdentityDep,
                          _: Clerk) -> AccountClosed:
    """At the agency counter, on the holder's ID card: close an online account someone else
    opened; the holder then opens their own with a code sent to their mobile."""
    return await handlers.recover_account(ctx, person_id, body, correlation_id(request))


@router.post("/login", response_model=TokenPublic, responses=errors(401, 422, 429))
async def login(body: Login, request: Request, ctx: IdentityDep) -> TokenPublic:
    """Log in with account number and password. Every refusal is the same 401, in the same
    time: an unknown account, a wrong password, and an account locked after repeated failures."""
    return await handlers.login(ctx, body, request, correlation_id(request))


@router.post("/staff", status_code=status.HTTP_201_CREATED, response_model=StaffPublic,
             responses=errors(401, 403, 409, 422))
async def create_staff_user(body: StaffCreate, request: Request, ctx: IdentityDep, _: Operator) -> StaffPublic:
    """Create a staff user (clerk, teller, operator, or a merchant's POS terminal)."""
    return await handlers.create_staff_user(ctx, body, correlation_id(request))


@router.post("/staff/login", response_model=TokenPublic, responses=errors(401, 422, 429))
async def staff_login(body: StaffLogin, request: Request, ctx: IdentityDep) -> TokenPublic:
    """Log a staff user in; a merchant terminal's token carries the merchant id as subject.
    Every refusal is the same 401: unknown user, wrong password, or locked."""
    return await handlers.staff_login(ctx, body, request, correlation_id(request))
