"""Driving services that are already running (``medcard up``, ``docker compose up``) instead
of starting a fleet of the run's own: what the run needs to reach them, and what keeps
its runs apart from each other and from whatever else the stack holds.

- The keys: the installation's keys file (``medcard up`` writes it in the local stack's
  state folder, compose keeps it in the ``medcard-keys`` volume), read as it is, never
  changed; a key set in this process's environment wins, as it does for the services. It
  gives the operator's bootstrap password and the key the rate-limit exemption's proof is
  made with (``shared/guard.py``): the services keep their limits, which every cardholder
  played from one address would exceed, and the run proves it holds the keys instead.
- The settings: the run reads the stack's MEDCARD_* settings (PIN tries, holidays...) from
  the same environment the services read; the stack's namespace and broker are options.
- The business date: the clock only goes forward, so the run starts from the stack's
  current business date, not the seed's.
- Apartness: a run tag in the population's identifiers; the topics read from where they
  ended when the run started; only the run's own aggregates' events counted; the bank's
  ledger judged by what it moved during the run.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp

from services.identity.domain import staff_key
from services.identity.config import OPERATOR_PASSWORD_KEY
from shared.guard import EXEMPTION_HEADER, exemption_proof
from shared.keys import existing_keys
from shared.settings import SECRET_SETTINGS, Settings

from .client import Ecosystem, UnexpectedAnswer
from .driver import Driver

SERVICES = ("identity", "cards", "bank", "notifications")


class CannotDrive(RuntimeError):
    """The running stack cannot be driven as asked (a service not ready, the operator's
    password refused, no business date, an option only a run's own services take): the
    message says what to fix."""


@dataclass(frozen=True)
class RunningStack:
    """The four services' base URLs, the installation's keys file, and the stack's namespace."""

    urls: dict[str, str]
    keys_file: Path
    namespace: str = "medcard"


def running_stack(urls: Mapping[str, str | None], keys_file: Path, namespace: str) -> RunningStack | None:
    """The stack the four URLs name, or None when none is given (the run starts its own
    services); ValueError when only some are."""
    given = {name: url for name, url in urls.items() if url}
    if not given:
        return None
    missing = [name for name in SERVICES if name not in given]
    if missing:
        raise ValueError(f"give all four services' URLs or none: {', '.join(f'--{m}-url' for m in missing)} "
                         f"missing (with none, the run starts services of its own)")
    return RunningStack({name: given[name].rstrip("/") for name in SERVICES}, keys_file, namespace)


REFUSED = {
    "faults": "--faults stops and starts the broker, the database and the services: only a run's own are its "
              "to stop (run without the URLs)",
    "resume": "--resume goes on with a run that started its own services; a run against running services "
              "cannot be resumed (it is not kept: start a new one)",
    "fast_hashing": "--fast-hashing sets the argon2 cost of the services a run starts; running services keep "
                    "theirs (MEDCARD_ARGON2_* where they run)",
    "service_env": "a policy is set on the services a run starts; running services cannot be reconfigured "
                   "(medcard compare needs services of its own)",
}


def refusals(options: Any) -> list[str]:
    """What the run's options ask of the services that running services cannot do."""
    return [why for name, why in REFUSED.items() if getattr(options, name)]


def stack_keys(keys_file: Path) -> dict[str, str]:
    """The services' keys and the operator's bootstrap password: each from this process's
    environment when set there (``MEDCARD_<NAME>``), else from the keys file."""
    names = (*SECRET_SETTINGS, OPERATOR_PASSWORD_KEY)
    given = {name: value for name in names if (value := os.environ.get(f"MEDCARD_{name.upper()}"))}
    rest = [name for name in names if name not in given]
    return {**(existing_keys(keys_file, rest) if rest else {}), **given}


def stack_settings(stack: RunningStack, kafka_bootstrap: str | None) -> tuple[Settings, str]:
    """The stack's settings as its services read them (this process's MEDCARD_* environment,
    the stack's namespace and broker, its keys) and the operator's password."""
    keys = stack_keys(stack.keys_file)
    password = keys.pop(OPERATOR_PASSWORD_KEY)
    values: dict[str, Any] = {"namespace": stack.namespace, "keys_file": stack.keys_file, **keys}
    if kafka_bootstrap:
        values["kafka_bootstrap"] = kafka_bootstrap
    return Settings(**values), password


def new_run_tag() -> str:
    """Eight hex digits: usernames start with a letter, so tagged ones are ``clerk-<tag>``."""
    return secrets.token_hex(4)


def exemption_headers(settings: Settings) -> dict[str, str]:
    """The header that lets the run past the services' rate limits (a fresh proof each call)."""
    return {EXEMPTION_HEADER: exemption_proof(settings.id_digest_key)}


async def open_ecosystem(stack: RunningStack, settings: Settings, operator_password: str,
                         typed: set[str] | None) -> Ecosystem:
    """Clients of the running services with the operator logged in; CannotDrive saying
    what is wrong when a service does not answer or the password is refused."""
    eco = Ecosystem(dict(stack.urls), operator_password, typed=typed, headers=lambda: exemption_headers(settings))
    await eco.open()
    try:
        for name, url in stack.urls.items():
            try:
                await eco.call(name, "GET", "/ready", retries=3)
            except (UnexpectedAnswer, aiohttp.ClientError) as err:
                raise CannotDrive(f"{name} at {url} is not ready: {err}") from None
        try:
            await eco.login_operator()
        except UnexpectedAnswer as err:
            raise CannotDrive(f"identity refused the operator's password from {stack.keys_file} ({err}): is it "
                               "the keys file of these services?") from None
    except BaseException:
        await eco.close()
        raise
    return eco


async def business_date(eco: Ecosystem) -> date:
    """The stack's business date, where the run starts (its clock only goes forward)."""
    try:
        answer = await eco.call("identity", "GET", "/v1/clock", who="operator")
        return date.fromisoformat(str(answer["date"]))
    except (UnexpectedAnswer, KeyError, ValueError) as err:
        raise CannotDrive(f"cannot read the business date from identity ({err}): the run starts from it") from None


@dataclass
class RunScope:
    """What the run's own aggregates are, to tell its events from the rest of the stack's."""

    keys: set[str] = field(default_factory=set)
    persons: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, driver: Driver) -> RunScope:
        population = driver.population
        persons = {h.person_id for h in driver.holders.values()}
        staff = [population.staff("clerk"), population.staff("teller"),
                 *(f"pos-{m.merchant_id.lower()}" for m in population.merchants)]
        keys = {*persons, *driver._units.values(), *(m.merchant_id for m in population.merchants),
                *(staff_key(name) for name in staff), "clock"}
        return cls(keys, persons)

    def __call__(self, attrs: dict[str, str], data: dict[str, Any]) -> bool:
        """The event is about one of the run's aggregates, or about one of its persons (a
        notification is keyed by its message)."""
        return attrs.get("partitionkey") in self.keys or data.get("person_id") in self.persons
