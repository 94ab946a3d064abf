"""The agency's register: insured units, insured persons and their monthly contributions."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from shared.service import correlation_id

from .. import handlers
from ..deps import Anyone, Clerk, IdentityDep, Staff
from ..domain import Person
from ..schemas import (
    ContributionCreate,
    ContributionsPublic,
    PersonCreate,
    PersonPublic,
    UnitCreate,
    UnitPublic,
    errors,
)

router = APIRouter(prefix="/v1", tags=["register"], responses=errors(401, 403))


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
    unit = await handlers.create_unit(ctx, body, correlation_id(request))
    return UnitPublic(**unit.model_dump())


@router.get("/units/{unit_id}", response_model=UnitPublic, responses=errors(404, 422))
async def get_unit(unit_id: str, ctx: IdentityDep, _: Staff) -> UnitPublic:
    """An insured unit."""
    return UnitPublic(**(await handlers.find_unit(ctx, unit_id)).model_dump())


@router.post("/persons", status_code=status.HTTP_201_CREATED, response_model=PersonPublic,
             responses=errors(409, 422))
async def create_person(body: PersonCreate, request: Request, ctx: IdentityDep, _: Clerk) -> PersonPublic:
    """Register an insured person; one person per resident ID number."""
    return person_public(await handlers.create_person(ctx, body, correlation_id(request)))


@router.get("/persons/{person_id}", response_model=PersonPublic, responses=errors(404, 422))
async def get_person(person_id: str, ctx: IdentityDep, principal: Anyone) -> PersonPublic:
    """A person's register entry: the person themself, or agency and bank staff."""
    return person_public(await handlers.find_person(ctx, principal, person_id))


@router.post("/contributions", status_code=status.HTTP_201_CREATED, response_model=ContributionsPublic,
             responses=errors(404, 409, 422))
async def pay_contributions(body: ContributionCreate, request: Request, ctx: IdentityDep,
                            _: Clerk) -> ContributionsPublic:
    """Record what an insured unit paid for a month: one personal-account share per employee."""
    return await handlers.pay_contributions(ctx, body, correlation_id(request))
