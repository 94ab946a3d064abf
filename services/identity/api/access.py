"""Access: online accounts of insured persons, staff users, and the logins that issue tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from shared.auth import Principal, issue_token, require_roles
from shared.errors import Invalid, Locked, Unauthorized
from shared.ids import id_digest, new_id
from shared.security import hash_secret_async, spend_a_verification_async, verify_secret_async
from shared.service import correlation_id

from ..context import IdentityDep
from ..domain import NO_MATCH, LoginResult, StaffUser, create_staff, ensure_unlocked, open_account, person_login
from ..domain import staff_login as staff_login_decision
from ..schemas import AccountCreate, AccountPublic, Login, StaffCreate, StaffLogin, StaffPublic, TokenPublic, errors
from .register import checked_id_number

router = APIRouter(prefix="/v1", tags=["access"])
WRONG_LOGIN = "wrong account number or password"


def refuse(result: LoginResult, message: str) -> None:
    """Turn a failed attempt into 401, or 423 when it was the one that locked the account."""
    if result.locked_until is not None:
        raise Locked(f"{message}; too many failed logins: locked until {result.locked_until.isoformat()}")
    raise Unauthorized(message, code="bad_credentials")


@router.post("/accounts", status_code=status.HTTP_201_CREATED, response_model=AccountPublic,
             responses=errors(409, 422))
async def create_account(body: AccountCreate, request: Request, ctx: IdentityDep) -> AccountPublic:
    """Open an online account: name and ID number must match the register."""
    digest = id_digest(ctx.settings.id_digest_key, checked_id_number(body.id_number))
    person = await ctx.person_by_digest(digest)
    if person is None:
        raise Invalid(NO_MATCH)
    decide = open_account(name=body.name, account_number=body.account_number,
                          password_hash=await hash_secret_async(body.password))
    decide(person)  # refuse a mismatch or a second account before claiming the number
    await ctx.claim_account_number(body.account_number, person.person_id)
    await ctx.persons.execute(person.person_id, decide, correlation_id=correlation_id(request))
    return AccountPublic(person_id=person.person_id, account_number=body.account_number)


@router.post("/login", response_model=TokenPublic, responses=errors(401, 422, 423))
async def login(body: Login, request: Request, ctx: IdentityDep) -> TokenPublic:
    """Log in with account number and password; repeated failures lock the account for a while."""
    person = await ctx.person_by_account(body.account_number)
    if person is None or person.account is None:
        await spend_a_verification_async(body.password)  # as slow as a wrong password: no account probing
        raise Unauthorized(WRONG_LOGIN, code="bad_credentials")
    now = datetime.now(UTC)
    ensure_unlocked(person.account, now)
    ok = await verify_secret_async(person.account.password_hash, body.password)
    outcome = await ctx.persons.execute(person.person_id, person_login(ok, now, ctx.login_policy),
                                        correlation_id=correlation_id(request))
    if not ok:
        refuse(outcome.result, WRONG_LOGIN)
    token = issue_token(ctx.settings, sub=person.person_id, role="cardholder", person_id=person.person_id)
    return TokenPublic(access_token=token, expires_in=ctx.settings.jwt_ttl_seconds, role="cardholder",
                       person_id=person.person_id)


def staff_key(username: str) -> str:
    """Aggregate id (and Kafka key) of a staff user: never equal to a person or unit id."""
    return f"staff:{username}"


@router.post("/staff", status_code=status.HTTP_201_CREATED, response_model=StaffPublic,
             responses=errors(401, 403, 409, 422))
async def create_staff_user(body: StaffCreate, request: Request, ctx: IdentityDep,
                            _: Annotated[Principal, Depends(require_roles("operator"))]) -> StaffPublic:
    """Create a staff user (clerk, teller, operator, or a merchant's POS terminal)."""
    user = StaffUser(user_id=new_id("S"), username=body.username, role=body.role, merchant_id=body.merchant_id,
                     password_hash=await hash_secret_async(body.password))
    await ctx.staff.execute(staff_key(user.username), create_staff(user), correlation_id=correlation_id(request))
    return StaffPublic(user_id=user.user_id, username=user.username, role=user.role, merchant_id=user.merchant_id)


@router.post("/staff/login", response_model=TokenPublic, responses=errors(401, 422, 423))
async def staff_login(body: StaffLogin, request: Request, ctx: IdentityDep) -> TokenPublic:
    """Log a staff user in; a merchant terminal's token carries the merchant id as subject."""
    user = await ctx.staff.get(staff_key(body.username))
    if user is None:
        await spend_a_verification_async(body.password)  # as slow as a wrong password: no username probing
        raise Unauthorized("wrong username or password", code="bad_credentials")
    now = datetime.now(UTC)
    ensure_unlocked(user, now)
    ok = await verify_secret_async(user.password_hash, body.password)
    outcome = await ctx.staff.execute(staff_key(user.username), staff_login_decision(ok, now, ctx.login_policy),
                                      correlation_id=correlation_id(request))
    if not ok:
        refuse(outcome.result, "wrong username or password")
    token = issue_token(ctx.settings, sub=user.merchant_id or user.user_id, role=user.role)
    return TokenPublic(access_token=token, expires_in=ctx.settings.jwt_ttl_seconds, role=user.role)
