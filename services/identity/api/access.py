"""Access: online accounts of insured persons, staff users, and the logins that issue tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from shared.auth import Principal, issue_token, require_roles
from shared.domain import Invalid, Locked, Unauthorized
from shared.guard import uniform_answer
from shared.ids import id_digest, new_id
from shared.revocations import staff_subject
from shared.security import hash_secret_async, spend_a_verification_async, verify_secret_async
from shared.service import correlation_id

from ..context import IdentityDep
from ..domain import (
    CODE_REFUSED,
    StaffUser,
    check_account_code,
    close_account_at_counter,
    code_digest,
    create_staff,
    ensure_unlocked,
    issue_account_code,
    new_code,
    open_account,
    person_login,
)
from ..domain import staff_login as staff_login_decision
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
from .register import checked_id_number

router = APIRouter(prefix="/v1", tags=["access"])
WRONG_LOGIN = ("wrong account number or password, or too many failed logins: the account is locked for a while")
WRONG_STAFF_LOGIN = "wrong username or password, or too many failed logins: the user is locked for a while"
CODE_SENT = "if the name and ID number match the register, a code was sent by SMS to the mobile registered for them"


@router.post("/accounts/codes", status_code=status.HTTP_202_ACCEPTED, response_model=AccountCodeSent,
             responses=errors(422, 429))
async def send_account_code(body: AccountCodeRequest, request: Request, ctx: IdentityDep) -> AccountCodeSent:
    """Opening an online account, step 1: a one-time code goes by SMS to the mobile registered
    for the ID number. The same answer, in the same time, whether or not name and ID match."""
    async with uniform_answer(ctx.settings.uniform_answer_seconds):
        digest = id_digest(ctx.settings.id_digest_key, checked_id_number(body.id_number))
        await ctx.limits.admit("account-codes", request, subject=("id", digest),
                               per_subject=ctx.settings.rate_limit_per_id_number)
        person = await ctx.person_by_digest(digest)
        if person is not None:
            code = new_code()
            decide = issue_account_code(
                name=body.name, digest=code_digest(ctx.settings.otp_key, person.person_id, code),
                sealed=ctx.code_box.seal(code, bound_to=person.person_id), now=datetime.now(UTC),
                ttl_seconds=ctx.settings.identity_account_code_seconds)
            await ctx.persons.execute(person.person_id, decide, correlation_id=correlation_id(request))
        return AccountCodeSent(detail=CODE_SENT, expires_in=ctx.settings.identity_account_code_seconds)


@router.post("/accounts", status_code=status.HTTP_201_CREATED, response_model=AccountPublic,
             responses=errors(409, 422, 429))
async def create_account(body: AccountCreate, request: Request, ctx: IdentityDep) -> AccountPublic:
    """Opening an online account, step 2: name and ID number as registered, and the code sent
    to the registered mobile. Every refusal before the code is checked is the same answer."""
    async with uniform_answer(ctx.settings.uniform_answer_seconds):
        digest = id_digest(ctx.settings.id_digest_key, checked_id_number(body.id_number))
        await ctx.limits.admit("accounts", request, subject=("id", digest),
                               per_subject=ctx.settings.rate_limit_per_id_number)
        password_hash = await hash_secret_async(body.password)  # on every path: the same cost
        person = await ctx.person_by_digest(digest)
        if person is None:
            raise Invalid(CODE_REFUSED)
        now, given = datetime.now(UTC), code_digest(ctx.settings.otp_key, person.person_id, body.code)
        checked = await ctx.persons.execute(person.person_id, check_account_code(
            name=body.name, digest=given, now=now, max_tries=ctx.settings.identity_account_code_max_tries),
            correlation_id=correlation_id(request))
        if not checked.result:
            raise Invalid(CODE_REFUSED)
        decide = open_account(name=body.name, account_number=body.account_number, password_hash=password_hash,
                              digest=given, now=now)
        decide(checked.state)  # refuse a second account before claiming the number
        await ctx.claim_account_number(body.account_number, person.person_id)
        await ctx.persons.execute(person.person_id, decide, correlation_id=correlation_id(request))
        return AccountPublic(person_id=person.person_id, account_number=body.account_number)


@router.post("/persons/{person_id}/account/recovery", response_model=AccountClosed,
             responses=errors(401, 403, 404, 409, 422))
async def recover_account(person_id: str, body: AccountRecovery, request: Request, ctx: IdentityDep,
                          _: Annotated[Principal, Depends(require_roles("clerk"))]) -> AccountClosed:
    """At the agency counter, on the holder's ID card: close an online account someone else
    opened; the holder then opens their own with a code sent to their mobile."""
    presented = id_digest(ctx.settings.id_digest_key, checked_id_number(body.id_number))
    outcome = await ctx.persons.execute(person_id, close_account_at_counter(presented),
                                        correlation_id=correlation_id(request))
    await ctx.revoke_tokens(person_id, outcome.events[0].time)  # the moment of OnlineAccountClosed
    await ctx.release_account_number(outcome.result, person_id)
    return AccountClosed(person_id=person_id, closed_account_number=outcome.result)


@router.post("/login", response_model=TokenPublic, responses=errors(401, 422, 429))
async def login(body: Login, request: Request, ctx: IdentityDep) -> TokenPublic:
    """Log in with account number and password. Every refusal is the same 401, in the same
    time: an unknown account, a wrong password, and an account locked after repeated failures."""
    async with uniform_answer(ctx.settings.uniform_answer_seconds):
        await ctx.limits.admit("login", request, subject=("account", body.account_number),
                               per_subject=ctx.settings.rate_limit_per_account_number)
        person = await ctx.person_by_account(body.account_number)
        if person is None or person.account is None:
            await spend_a_verification_async(body.password)  # as slow as a wrong password: no account probing
            raise Unauthorized(WRONG_LOGIN, code="bad_credentials")
        now = datetime.now(UTC)
        ok = await verify_secret_async(person.account.password_hash, body.password)  # also while locked
        try:
            ensure_unlocked(person.account, now)
            outcome = await ctx.persons.execute(person.person_id, person_login(ok, now, ctx.login_policy),
                                                correlation_id=correlation_id(request))
            if outcome.result.locked_until is not None:  # the moment of OnlineAccountLocked
                await ctx.revoke_tokens(person.person_id, outcome.events[0].time)
        except Locked:
            ok = False
        if not ok:
            raise Unauthorized(WRONG_LOGIN, code="bad_credentials")
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


@router.post("/staff/login", response_model=TokenPublic, responses=errors(401, 422, 429))
async def staff_login(body: StaffLogin, request: Request, ctx: IdentityDep) -> TokenPublic:
    """Log a staff user in; a merchant terminal's token carries the merchant id as subject.
    Every refusal is the same 401: unknown user, wrong password, or locked."""
    await ctx.limits.admit("staff-login", request, subject=("staff", body.username),
                           per_subject=ctx.settings.rate_limit_per_account_number)
    user = await ctx.staff.get(staff_key(body.username))
    if user is None:
        await spend_a_verification_async(body.password)  # as slow as a wrong password: no username probing
        raise Unauthorized(WRONG_STAFF_LOGIN, code="bad_credentials")
    now = datetime.now(UTC)
    ok = await verify_secret_async(user.password_hash, body.password)  # also while locked
    try:
        ensure_unlocked(user, now)
        outcome = await ctx.staff.execute(staff_key(user.username), staff_login_decision(ok, now, ctx.login_policy),
                                          correlation_id=correlation_id(request))
        if outcome.result.locked_until is not None:  # no event: only identity refuses the earlier tokens
            await ctx.revoke_tokens(staff_subject(user.user_id), datetime.now(UTC))
    except Locked:
        ok = False
    if not ok:
        raise Unauthorized(WRONG_STAFF_LOGIN, code="bad_credentials")
    token = issue_token(ctx.settings, sub=user.merchant_id or user.user_id, role=user.role)
    return TokenPublic(access_token=token, expires_in=ctx.settings.jwt_ttl_seconds, role=user.role)
