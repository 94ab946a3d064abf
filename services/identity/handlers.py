"""Identity's commands, one function each: the register (units, persons, contributions),
access (online accounts opened with a one-time code, logins that lock, staff users) and the
business clock. Each takes the context and the parsed input, and returns the answer.

Identity consumes no topic: it is where the register, the accounts and the clock start."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import Request

import shared.clock
from shared.app import Subscription
from shared.auth import Principal, ensure_owner_or_staff, issue_token
from shared.calendar import real_today
from shared.domain import Locked, NotFound, Unauthorized
from shared.guard import uniform_answer
from shared.ids import checked_id_number, id_digest, mask_id_number, new_id, presented_digest
from shared.outbox import ConcurrencyConflict
from shared.revocations import staff_subject
from shared.security import hash_secret_async, spend_a_verification_async, verify_secret_async

from .clock import CLOCK_ID, Advanced, advance
from .deps import Identity
from .domain import (
    CodeRefused,
    IdNumberTaken,
    InsuredUnit,
    Person,
    StaffUser,
    check_account_code,
    check_contribution,
    check_each_person_once,
    check_id_number_free,
    check_unit_registered,
    check_unlocked,
    checked_mobile,
    close_account_at_counter,
    code_digest,
    create_staff,
    issue_account_code,
    new_code,
    open_account,
    pay_contribution,
    person_login,
    register_person,
    register_unit,
    staff_key,
)
from .domain import staff_login as staff_login_decision
from .schemas import (
    AccountClosed,
    AccountCodeRequest,
    AccountCodeSent,
    AccountCreate,
    AccountPublic,
    AccountRecovery,
    ClockAdvance,
    ClockAdvanced,
    ClockPublic,
    ContributionCreate,
    ContributionPublic,
    ContributionsPublic,
    Login,
    PersonCreate,
    StaffCreate,
    StaffLogin,
    StaffPublic,
    TokenPublic,
    UnitCreate,
)

CONSUMERS: list[Subscription[Identity]] = []

WRONG_LOGIN = ("wrong account number or password, or too many failed logins: the account is locked for a while")
WRONG_STAFF_LOGIN = "wrong username or password, or too many failed logins: the user is locked for a while"
CODE_SENT = "if the name and ID number match the register, a code was sent by SMS to the mobile registered for them"


# The register.

async def create_unit(ctx: Identity, body: UnitCreate, correlation_id: str) -> InsuredUnit:
    """A new insured unit (an employer) in the register."""
    unit = InsuredUnit(unit_id=new_id("U"), name=body.name.strip())
    await ctx.units.execute(unit.unit_id, register_unit(unit), correlation_id=correlation_id, fresh=True)
    return unit


async def find_unit(ctx: Identity, unit_id: str) -> InsuredUnit:
    unit = await ctx.units.get(unit_id)
    if unit is None:
        raise NotFound(f"insured unit {unit_id} is not registered")
    return unit


async def create_person(ctx: Identity, body: PersonCreate, correlation_id: str) -> Person:
    """A new person in the register: a valid ID number and mobile, a registered unit (or
    none), and no one registered with that ID number already."""
    id_number = checked_id_number(body.id_number)
    mobile = checked_mobile(body.mobile)
    if body.unit_id is not None:
        check_unit_registered(await ctx.unit(body.unit_id), body.unit_id)
    digest = id_digest(ctx.settings.id_digest_key, id_number)
    check_id_number_free(await ctx.person_by_digest(digest))
    person = Person(
        person_id=new_id("P"), name=body.name.strip(), id_number_digest=digest,
        id_number_masked=mask_id_number(id_number), mobile=mobile, household_number=body.household_number.strip(),
        unit_id=body.unit_id, language=body.language,
    )
    try:  # the unique index on the digest settles a race between two registrations
        await ctx.persons.execute(person.person_id, register_person(person), correlation_id=correlation_id,
                                  retries=1, fresh=True)
    except ConcurrencyConflict:
        raise IdNumberTaken() from None
    return person


async def find_person(ctx: Identity, principal: Principal, person_id: str) -> Person:
    """A person's register entry, for the person themself or agency and bank staff."""
    ensure_owner_or_staff(principal, person_id, "clerk", "teller", "operator")
    person = await ctx.persons.get(person_id)
    if person is None:
        raise NotFound(f"person {person_id} is not registered")
    return person


async def pay_contributions(ctx: Identity, body: ContributionCreate, correlation_id: str) -> ContributionsPublic:
    """Pay each person's share of a unit's month: every item is checked before any is
    written, so a refused contribution pays no one."""
    if await ctx.unit(body.unit_id) is None:
        raise NotFound(f"insured unit {body.unit_id} is not registered")
    person_ids = [item.person_id for item in body.items]
    check_each_person_once(person_ids)
    docs = await ctx.persons.get_docs(person_ids)  # one read for all
    states = [ctx.persons.state_of(doc) for doc in docs]
    for pid, state in zip(person_ids, states, strict=True):  # check every item before writing any
        check_contribution(state, pid, body.unit_id, body.month)
    results = await ctx.persons.execute_loaded([  # one write for all
        (doc, state, pay_contribution(person_id=item.person_id, unit_id=body.unit_id, month=body.month,
                                      amount_fen=item.amount_fen, checked=True), correlation_id)
        for item, doc, state in zip(body.items, docs, states, strict=True) if doc is not None])
    paid = [ContributionPublic(contribution_id=result.contribution_id, person_id=item.person_id,
                               amount_fen=item.amount_fen) for item, result in zip(body.items, results, strict=True)]
    return ContributionsPublic(unit_id=body.unit_id, month=body.month, data=paid, count=len(paid))


# Access.

async def send_account_code(ctx: Identity, body: AccountCodeRequest, request: Request,
                            correlation_id: str) -> AccountCodeSent:
    """Step 1 of an online account: a code for the person registered with the ID number, if
    the name matches. The answer is the same, in the same time, either way: it must not
    tell who is registered."""
    async with uniform_answer(ctx.settings.uniform_answer_seconds):
        digest = presented_digest(ctx.settings.id_digest_key, body.id_number)
        await ctx.limits.admit("account-codes", request, subject=("id", digest),
                               per_subject=ctx.settings.rate_limit_per_id_number)
        found = await ctx.person_doc_by_digest(digest)
        if found is not None:
            person, doc = found
            code = new_code()
            decide = issue_account_code(
                name=body.name, digest=code_digest(ctx.settings.otp_key, person.person_id, code),
                sealed=ctx.code_box.seal(code, bound_to=person.person_id), now=datetime.now(UTC),
                ttl_seconds=ctx.settings.identity_account_code_seconds)
            await ctx.persons.execute(person.person_id, decide, correlation_id=correlation_id,
                                      loaded=doc, loaded_state=person)
        return AccountCodeSent(detail=CODE_SENT, expires_in=ctx.settings.identity_account_code_seconds)


async def create_account(ctx: Identity, body: AccountCreate, request: Request, correlation_id: str) -> AccountPublic:
    """Step 2: the account, if name, ID number and code match. Every refusal before the code
    is checked is the one ``CodeRefused``, and the password is hashed on every path, so
    that each costs the same."""
    async with uniform_answer(ctx.settings.uniform_answer_seconds):
        digest = presented_digest(ctx.settings.id_digest_key, body.id_number)
        await ctx.limits.admit("accounts", request, subject=("id", digest),
                               per_subject=ctx.settings.rate_limit_per_id_number)
        password_hash = await hash_secret_async(body.password)  # on every path: the same cost
        found = await ctx.person_doc_by_digest(digest)
        if found is None:
            raise CodeRefused()
        person, doc = found
        now, given = datetime.now(UTC), code_digest(ctx.settings.otp_key, person.person_id, body.code)
        checked = await ctx.persons.execute(person.person_id, check_account_code(
            name=body.name, digest=given, now=now, max_tries=ctx.settings.identity_account_code_max_tries),
            correlation_id=correlation_id, loaded=doc, loaded_state=person)
        if not checked.result:
            raise CodeRefused()
        decide = open_account(name=body.name, account_number=body.account_number, password_hash=password_hash,
                              digest=given, now=now)
        decide(checked.state)  # refuse a second account before claiming the number
        await ctx.claim_account_number(body.account_number, person.person_id)
        # A right code is checked without a write: the document read above is still the one
        # to write over (if it moved meanwhile, the guarded write fails and it is read again).
        await ctx.persons.execute(person.person_id, decide, correlation_id=correlation_id,
                                  loaded=doc, loaded_state=person)
        return AccountPublic(person_id=person.person_id, account_number=body.account_number)


async def recover_account(ctx: Identity, person_id: str, body: AccountRecovery, correlation_id: str) -> AccountClosed:
    """Close, on the holder's ID card, an online account someone else opened: its earlier
    tokens are refused and its number is freed for the holder's own."""
    presented = presented_digest(ctx.settings.id_digest_key, body.id_number)
    outcome = await ctx.persons.execute(person_id, close_account_at_counter(presented),
                                        correlation_id=correlation_id)
    await ctx.revoke_tokens(person_id, outcome.events[0].time)  # the moment of OnlineAccountClosed
    await ctx.release_account_number(outcome.result, person_id)
    return AccountClosed(person_id=person_id, closed_account_number=outcome.result)


async def login(ctx: Identity, body: Login, request: Request, correlation_id: str) -> TokenPublic:
    """A cardholder's token for account number and password. An unknown account, a wrong
    password and a lock all get the same 401, in the same time."""
    async with uniform_answer(ctx.settings.uniform_answer_seconds):
        await ctx.limits.admit("login", request, subject=("account", body.account_number),
                               per_subject=ctx.settings.rate_limit_per_account_number)
        found = await ctx.holder_of(body.account_number)
        if found is None or found[0].account is None:
            await spend_a_verification_async(body.password)  # as slow as a wrong password: no account probing
            raise Unauthorized(WRONG_LOGIN, code="bad_credentials")
        person, doc = found
        assert person.account is not None
        now = datetime.now(UTC)
        ok = await verify_secret_async(person.account.password_hash, body.password)  # also while locked
        try:
            check_unlocked(person.account, now)
            outcome = await ctx.persons.execute(person.person_id, person_login(ok, now, ctx.login_policy),
                                                correlation_id=correlation_id, loaded=doc, loaded_state=person)
            if outcome.result.locked_until is not None:  # the moment of OnlineAccountLocked
                await ctx.revoke_tokens(person.person_id, outcome.events[0].time)
        except Locked:
            ok = False
        if not ok:
            raise Unauthorized(WRONG_LOGIN, code="bad_credentials")
        token = issue_token(ctx.settings, sub=person.person_id, role="cardholder", person_id=person.person_id)
        return TokenPublic(access_token=token, expires_in=ctx.settings.jwt_ttl_seconds, role="cardholder",
                           person_id=person.person_id)


async def create_staff_user(ctx: Identity, body: StaffCreate, correlation_id: str) -> StaffPublic:
    """Create a staff user (clerk, teller, operator, or a merchant's POS terminal)."""
    user = StaffUser(user_id=new_id("S"), username=body.username, role=body.role, merchant_id=body.merchant_id,
                     password_hash=await hash_secret_async(body.password))
    await ctx.staff.execute(staff_key(user.username), create_staff(user), correlation_id=correlation_id)
    return StaffPublic(user_id=user.user_id, username=user.username, role=user.role, merchant_id=user.merchant_id)


async def staff_login(ctx: Identity, body: StaffLogin, request: Request, correlation_id: str) -> TokenPublic:
    """A staff user's token (a merchant terminal's carries the merchant id as subject);
    every refusal is the same 401."""
    await ctx.limits.admit("staff-login", request, subject=("staff", body.username),
                           per_subject=ctx.settings.rate_limit_per_account_number)
    user = await ctx.staff.get(staff_key(body.username))
    if user is None:
        await spend_a_verification_async(body.password)  # as slow as a wrong password: no username probing
        raise Unauthorized(WRONG_STAFF_LOGIN, code="bad_credentials")
    now = datetime.now(UTC)
    ok = await verify_secret_async(user.password_hash, body.password)  # also while locked
    try:
        check_unlocked(user, now)
        outcome = await ctx.staff.execute(staff_key(user.username), staff_login_decision(ok, now, ctx.login_policy),
                                          correlation_id=correlation_id)
        if outcome.result.locked_until is not None:  # no event: only identity refuses the earlier tokens
            await ctx.revoke_tokens(staff_subject(user.user_id), datetime.now(UTC))
    except Locked:
        ok = False
    if not ok:
        raise Unauthorized(WRONG_STAFF_LOGIN, code="bad_credentials")
    token = issue_token(ctx.settings, sub=user.merchant_id or user.user_id, role=user.role)
    return TokenPublic(access_token=token, expires_in=ctx.settings.jwt_ttl_seconds, role=user.role)


# The business clock.

async def clock_now(ctx: Identity) -> ClockPublic:
    """The clock's date, and whether it was ever advanced (until then, the real date in China)."""
    state = await ctx.clock.get(CLOCK_ID)
    return ClockPublic(date=state.date if state else real_today(), simulated=state is not None)


async def published(ctx: Identity, sequence: int) -> bool:
    """The relay has put the clock's events up to ``sequence`` on the clock topic."""
    doc = await ctx.clock.get_doc(CLOCK_ID)
    return doc is not None and doc.get("outbox_done", 0) >= sequence


async def advance_clock(ctx: Identity, body: ClockAdvance, correlation_id: str) -> ClockAdvanced:
    """Move the clock, then wait (at most ``identity_clock_followers_wait_seconds``) until
    every service's clock group has applied the new date, and then as long as a replica may
    reuse the date it read (``DATE_REUSE_SECONDS``); the answer names the services behind."""
    outcome = await ctx.clock.execute(
        CLOCK_ID, advance(today=real_today(), start=body.start, days=body.days, to=body.to),
        correlation_id=correlation_id,
    )
    result: Advanced = outcome.result
    last = outcome.events[-1].sequence if outcome.events else 0
    behind = await ctx.followers.wait(lambda: published(ctx, last),
                                      ctx.settings.identity_clock_followers_wait_seconds)
    if outcome.events:  # then no replica of a service that applied it dates a command with a read of the day before
        await asyncio.sleep(shared.clock.DATE_REUSE_SECONDS)
    return ClockAdvanced(previous_date=result.previous_date, date=result.date,
                         days=(result.date - result.previous_date).days, months_ended=result.months_ended,
                         applied_everywhere=not behind, services_behind=behind)
