"""The agency's register: insured units, insured persons and their monthly contributions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from shared.auth import CurrentPrincipal, Principal, ensure_owner_or_staff, require_roles
from shared.domain import Conflict, Invalid, NotFound
from shared.ids import InvalidIdNumber, id_digest, mask_id_number, new_id, validate_id_number, validate_mobile
from shared.outbox import ConcurrencyConflict
from shared.service import correlation_id

from ..context import IdentityDep
from ..domain import InsuredUnit, Person, check_contribution, pay_contribution, register_person, register_unit
from ..schemas import (
    ContributionCreate,
    ContributionPublic,
    ContributionsPublic,
    PersonCreate,
    PersonPublic,
    UnitCreate,
    UnitPublic,
    errors,
)

router = APIRouter(prefix="/v1", tags=["register"], responses=errors(401, 403))
Clerk = Annotated[Principal, Depends(require_roles("clerk"))]


def checked_id_number(value: str) -> str:
    """The normalised ID number, or a 422 saying precisely what is wrong with it."""
    try:
        return validate_id_number(value)
    except InvalidIdNumber as err:
        raise Invalid(str(err)) from None


def person_public(person: Person) -> PersonPublic:
    return PersonPublic(
        person_id=person.person_id, name=person.name, id_number_masked=person.id_number_masked,
        mobile=person.mobile, household_number=person.household_number, unit_id=person.unit_id,
        language=person.language, account_number=person.account.account_number if person.account else None,
        contribution_months=sorted(person.contributions),
    )


@router.post("/units", status_code=status.HTTP_201_CREATED, response_model=UnitPublic, responses=errors(422))
async def create_unit(body: UnitCreate, request: Request, ctx: IdentityDep, _: Clerk) -> UnitPublic:
    """Register an insured unit (an employer)."""
    unit = InsuredUnit(unit_id=new_id("U"), name=body.name.strip())
    await ctx.units.execute(unit.unit_id, register_unit(unit), correlation_id=correlation_id(request))
    return UnitPublic(**unit.model_dump())


@router.get("/units/{unit_id}", response_model=UnitPublic, responses=errors(404, 422))
async def get_unit(unit_id: str, ctx: IdentityDep,
                   _: Annotated[Principal, Depends(require_roles("clerk", "teller", "operator"))]) -> UnitPublic:
    """An insured unit."""
    unit = await ctx.units.get(unit_id)
    if unit is None:
        raise NotFound(f"insured unit {unit_id} is not registered")
    return UnitPublic(**unit.model_dump())


@router.post("/persons", status_code=status.HTTP_201_CREATED, response_model=PersonPublic,
             responses=errors(409, 422))
async def create_person(body: PersonCreate, request: Request, ctx: IdentityDep, _: Clerk) -> PersonPublic:
    """Register an insured person; one person per resident ID number."""
    id_number = checked_id_number(body.id_number)
    try:
        mobile = validate_mobile(body.mobile)
    except ValueError as err:
        raise Invalid(str(err)) from None
    if body.unit_id is not None and await ctx.units.get(body.unit_id) is None:
        raise Invalid(f"insured unit {body.unit_id} is not registered")
    digest = id_digest(ctx.settings.id_digest_key, id_number)
    duplicate = Conflict("a person with this ID number is already registered")
    if await ctx.person_by_digest(digest) is not None:
        raise duplicate
    person = Person(
        person_id=new_id("P"), name=body.name.strip(), id_number_digest=digest,
        id_number_masked=mask_id_number(id_number), mobile=mobile, household_number=body.household_number.strip(),
        unit_id=body.unit_id, language=body.language,
    )
    try:  # the unique index on the digest settles a race between two registrations
        await ctx.persons.execute(person.person_id, register_person(person),
                                  correlation_id=correlation_id(request), retries=1)
    except ConcurrencyConflict:
        raise duplicate from None
    return person_public(person)


@router.get("/persons/{person_id}", response_model=PersonPublic, responses=errors(404, 422))
async def get_person(person_id: str, ctx: IdentityDep, principal: CurrentPrincipal) -> PersonPublic:
    """A person's register entry: the person themself, or agency and bank staff."""
    ensure_owner_or_staff(principal, person_id, "clerk", "teller", "operator")
    person = await ctx.persons.get(person_id)
    if person is None:
        raise NotFound(f"person {person_id} is not registered")
    return person_public(person)


@router.post("/contributions", status_code=status.HTTP_201_CREATED, response_model=ContributionsPublic,
             responses=errors(404, 409, 422))
async def pay_contributions(body: ContributionCreate, request: Request, ctx: IdentityDep,
                            _: Clerk) -> ContributionsPublic:
    """Record what an insured unit paid for a month: one personal-account share per employee."""
    if await ctx.units.get(body.unit_id) is None:
        raise NotFound(f"insured unit {body.unit_id} is not registered")
    person_ids = [item.person_id for item in body.items]
    if len(set(person_ids)) != len(person_ids):
        raise Invalid("each person may appear only once in a contribution")
    for pid in person_ids:  # check every item before writing any
        check_contribution(await ctx.persons.get(pid), pid, body.unit_id, body.month)
    paid = []
    for item in body.items:
        outcome = await ctx.persons.execute(
            item.person_id,
            pay_contribution(person_id=item.person_id, unit_id=body.unit_id, month=body.month,
                             amount_fen=item.amount_fen),
            correlation_id=correlation_id(request),
        )
        paid.append(ContributionPublic(contribution_id=outcome.result.contribution_id, person_id=item.person_id,
                                       amount_fen=item.amount_fen))
    return ContributionsPublic(unit_id=body.unit_id, month=body.month, data=paid, count=len(paid))
