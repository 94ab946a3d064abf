"""Drives the ecosystem day by day, as the people of the domain would, through HTTP only.

Each day: the day's actions run concurrently across people and in order for each person;
then the operator advances the business clock by one day, and the simulation waits until
every event stream has drained (the day's effects, and the clock's: month-end transfers,
replacements becoming ready), so outcomes do not depend on timing and the same seed gives
the same business outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from shared.bounded import within
from shared.calendar import BusinessCalendar, last_day_of_month
from shared.settings import Settings
from shared.topics import partitions_of

from .client import Ecosystem, UnexpectedAnswer, once_known
from .faults import FaultInjector
from .plan import Action, Planner, Rates
from .population import Person, Population

CONCURRENCY = 48
KAFKA_SECONDS = 60.0
"""Longest the drain's Kafka clients may take to start or to close."""
LOOK_PAUSE = (0.02, 0.5)
"""The drain's pause after its first look that found something in flight, doubled after each
further one up to the second figure. At a fixed 50 ms, the final drain of 1,000 persons
(notifications catching up for 7 minutes on a loaded machine) made 2,200 looks, each a dozen
requests to the services and the broker, slowing what it waited for."""
SET_PIN_WAIT_SECONDS = 300.0
"""How long a person at the counter waits for the bank to learn of their new card (its
CardIssued event): a month end of 100,000 accounts keeps the bank busy for minutes."""
SET_UP_CHUNK = 2_000
"""Persons registered before their online accounts are opened (at about 70 registrations a
second on 2 cores: half a minute, against codes valid for five)."""
BUSINESS_SERVICES = ("identity", "cards", "bank")
"""The services whose state the simulated people's next actions depend on."""
OWNER_CARD_ACTIONS = frozenset({"purchase", "change_pin", "forgot_pin", "balance"})
"""What only the holder of a usable card does (a thief's attempt is not among them)."""


@dataclass
class Holder:
    """What the simulation remembers of one person (what they hold in their hands)."""

    person_id: str = ""
    id_number: str = ""
    card: str = ""
    pin: str = ""
    token: str = ""
    receipt: str = ""
    stamp_due: date | None = None
    ready_on: date | None = None
    """The day cards said the replacement would be ready, when asked before it was: not asked
    again before that day (it was asked every working day)."""
    usable: bool = True
    """False from the loss report (or the broken card's replacement) until the new card."""
    pos_calls: int = 0
    """Swipes of the card so far today (numbers the terminal's transaction ids)."""


@dataclass
class Doing:
    """What one person's (or one unit's) day added to the ledger, while it runs (see ``DOING``)."""

    ids: list[tuple[str, str]] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    loss_answers: Counter[str] = field(default_factory=Counter)


DOING: contextvars.ContextVar[Doing | None] = contextvars.ContextVar("doing", default=None)
"""The day's work under way in this task: the day's journal records it once done."""


@dataclass
class Ledger:
    """Everything the services accepted, to check later that its events were published."""

    persons: set[str] = field(default_factory=set)
    cards: set[str] = field(default_factory=set)
    vouchers: set[str] = field(default_factory=set)
    receipts: set[str] = field(default_factory=set)
    stamps: set[str] = field(default_factory=set)
    authorisations: set[str] = field(default_factory=set)
    contributions: set[str] = field(default_factory=set)
    answers: Counter[str] = field(default_factory=Counter)
    loss_answers: Counter[str] = field(default_factory=Counter)
    """How the loss reports answered the block: 'confirmed' (the bank had stopped the card) or 'pending'."""
    new: list[tuple[str, str]] = field(default_factory=list)
    """(kind, id) noted since the last checkpoint (see progress.py)."""

    def note(self, kind: str, ident: str) -> None:
        """``ident`` was accepted by a service: its events must reach the topics."""
        getattr(self, kind).add(ident)
        self.new.append((kind, ident))
        if (doing := DOING.get()) is not None:
            doing.ids.append((kind, ident))

    def answered(self, kind: str) -> None:
        self.answers[kind] += 1
        if (doing := DOING.get()) is not None:
            doing.answers[kind] += 1

    def loss_answered(self, block: str) -> None:
        self.loss_answers[block] += 1
        if (doing := DOING.get()) is not None:
            doing.loss_answers[block] += 1

    def take_new(self) -> list[tuple[str, str]]:
        new, self.new = self.new, []
        return new


class Stopped(Exception):
    """The run was asked to stop; it stopped once ``day``'s morning was reached (resumable)."""

    def __init__(self, day: date) -> None:
        super().__init__(f"stopped before {day.isoformat()}")
        self.day = day


@dataclass
class Driver:
    eco: Ecosystem
    population: Population
    rates: Rates
    calendar: BusinessCalendar
    settings: Settings
    start: date
    progress: Callable[[str, int], None] = lambda _what, _n: None
    holders: dict[int, Holder] = field(default_factory=dict)
    ledger: Ledger = field(default_factory=Ledger)
    today: date = date.min
    first_day: date = date.min
    """The first simulated day (the 1st of the month after the opening month)."""
    day_number: int = 0
    """Simulated days done (the opening month not counted)."""
    faults: FaultInjector | None = None
    journal: Any = None
    """The day's journal (``progress.DayJournal``), when the run keeps its progress."""
    _units: dict[str, str] = field(default_factory=dict)
    _codes_read: set[str] = field(default_factory=set)
    """Message ids of the account-code SMS already read (a phone reads each once)."""
    concurrency: int = CONCURRENCY
    """Persons acting at once (each one's actions in order)."""
    staff_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    timings: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    """Wall seconds by phase, and counts (``drain_looks``): where the run's time went."""
    lives_at_month_start: list[list[bool]] = field(default_factory=list)
    """The planner's view of each card when the current month's plan was made (a resumed run
    makes the same plan again from it)."""
    _admin: AIOKafkaAdminClient | None = None
    _ends: AIOKafkaConsumer | None = None
    _moved: int = 0
    """The services' published, applied and dead-lettered events, summed, at the last look."""

    async def close(self) -> None:
        if self._admin is not None:
            await within(self._admin.close(), KAFKA_SECONDS, "the drain's Kafka admin client closing")
        if self._ends is not None:
            await within(self._ends.stop(), KAFKA_SECONDS, "the drain's end-offsets reader stopping (Kafka)")

    # ---- set-up ---------------------------------------------------------------------
    async def set_up(self) -> None:
        """Clock, staff, merchants, units, then every person with a card and a password.

        Each step runs for everyone at once (bounded by ``concurrency``); a person's online
        account is opened once the SMS with its code has been sent (the drain before it),
        so that no one waits on a phone while holding a place. Persons are registered and
        open their accounts ``SET_UP_CHUNK`` at a time: a code is valid for five minutes
        (identity's ``identity_account_code_seconds``), and registering 100,000 persons
        takes half an hour."""
        eco = self.eco
        await eco.login_operator()
        self.today = (await eco.call("identity", "POST", "/v1/clock/advance", who="operator",
                                     json={"start": self.start.isoformat(), "days": 1}))["date"]
        self.today = date.fromisoformat(str(self.today))
        await self.log_staff_in()
        await self._each(self.population.units, self._unit, None)
        persons = self.population.persons
        for first in range(0, len(persons), SET_UP_CHUNK):  # each code used while it is valid
            chunk = persons[first:first + SET_UP_CHUNK]
            await self._each(chunk, self._register, "register")
            await self.drain()  # notifications has sent every account code's SMS
            await self._each([p for p in chunk if p.online], self._open_account, None)
        await self._each(persons, self._issue_card, "cards")
        await self.drain(services=BUSINESS_SERVICES)  # the bank has opened every account: passwords can be set
        await self._each(list(self.holders.values()), self._set_pin, None)

    async def log_staff_in(self) -> None:
        """The clerk, the teller and each merchant's terminal (created the first time)."""
        eco = self.eco
        staff = self.population.staff
        await asyncio.gather(eco.create_staff(staff("clerk"), "clerk", self.staff_password, who="clerk"),
                             eco.create_staff(staff("teller"), "teller", self.staff_password, who="teller"))

        async def merchant(m: Any) -> None:
            await eco.call("bank", "POST", "/v1/merchants", who="operator", expect=(201, 409),
                           json={"merchant_id": m.merchant_id, "name": m.name, "kind": m.kind,
                                 "designated": m.designated})
            await eco.create_staff(f"pos-{m.merchant_id.lower()}", "merchant", self.staff_password, m.merchant_id)

        await self._each(self.population.merchants, merchant, None)

    async def _unit(self, u: Any) -> None:
        self._units[u.key] = (await self.eco.call("identity", "POST", "/v1/units", who="clerk",
                                                  json={"name": u.name}))["unit_id"]

    async def _register(self, p: Person) -> None:
        person = await self.eco.call("identity", "POST", "/v1/persons", who="clerk", json={
            "name": p.name, "id_number": p.id_number, "mobile": p.mobile,
            "household_number": p.household_registration, "unit_id": self._units[p.unit_key],
            "language": p.language})
        h = self.holders[p.index] = Holder(person_id=person["person_id"], id_number=p.id_number, pin=p.pin)
        self.ledger.note("persons", h.person_id)
        if p.online:  # the code goes by SMS to the registered mobile; read in _open_account
            await self.eco.call("identity", "POST", "/v1/accounts/codes", expect=(202,),
                                json={"name": p.name, "id_number": p.id_number})

    async def _open_account(self, p: Person) -> None:
        """The online account, as a person opens it: read the code on the phone (the SMS the
        notifications service sent to the registered mobile), give it back."""
        code = await self.eco.read_code_sms(self.holders[p.index].person_id, self._codes_read)
        await self.eco.call("identity", "POST", "/v1/accounts", json={
            "name": p.name, "id_number": p.id_number, "code": code, "account_number": p.account_number,
            "password": p.password})

    async def _issue_card(self, p: Person) -> None:
        h = self.holders[p.index]
        card = await self.eco.call("cards", "POST", "/v1/cards", who="clerk", json={"person_id": h.person_id})
        h.card = card["card_number"]
        self.ledger.note("cards", h.card)

    async def _set_pin(self, h: Holder) -> None:
        # The bank learns of the card from its CardIssued event: wait until it has. It may
        # be minutes behind: a month end of 100,000 accounts kept it busy for longer than
        # the 10 s once allowed here, and a replacement collected then ended the run.
        await once_known(lambda: self.eco.call("bank", "PUT", f"/v1/cards/{h.card}/password", who="teller",
                                                json={"pin": h.pin, "channel": "counter", "id_number": h.id_number}),
                         f"card {h.card}", within=SET_PIN_WAIT_SECONDS)

    # ---- the months ---------------------------------------------------------------------
    async def run_days(self, planner: Planner, end: date, *, acted: bool = False,
                       checkpoint: Callable[[], Awaitable[None]] | None = None,
                       stopping: Callable[[], bool] = lambda: False) -> None:
        """Every business day from ``today`` to the day before ``end``; the plan of a month is
        made on its first day (or again, from ``lives_at_month_start``, when a run resumes).

        ``acted``: today's actions were all answered by an earlier run (a resumed one): only
        the clock's advance past it (unless done) and the drain remain. ``checkpoint`` is
        awaited once a day's actions are all answered; ``stopping()`` is asked after each
        day has drained, and a true answer ends the run there (``Stopped``)."""
        plan = self._month_plan(planner, resumed=True)
        resumed = acted
        while self.today < end:
            day = self.today
            if day.day == 1 and not resumed:
                plan = self._month_plan(planner, resumed=False)
            if not acted:
                with self._timed("day_actions"):
                    await self._run_day(day, plan.get(day, []), planner)
                self.progress("days", 1)
                if checkpoint is not None:
                    with self._timed("checkpoints"):
                        await checkpoint()
            with self._timed("advances"):
                if not (resumed and await self._clock() > day):  # a resumed run's clock may be past it
                    if self.faults is None:
                        await self._advance()
                    else:
                        await self.faults.around_advance(self.day_number, self._advance)
            acted = resumed = False
            self.day_number += 1
            self.today = day + timedelta(days=1)
            # The next day starts once the day's effects and the clock's (a month end's
            # transfers, replacements becoming ready) have been applied by the services the
            # next day's actions depend on. Nothing depends on the notifications service:
            # its messages go out meanwhile, and the final drain waits for them.
            await self.drain(services=BUSINESS_SERVICES)
            if stopping() and self.today < end:
                raise Stopped(self.today)

    def _month_plan(self, planner: Planner, *, resumed: bool) -> dict[date, list[Action]]:
        first = self.today.replace(day=1)
        last = last_day_of_month(f"{first.year:04d}-{first.month:02d}")
        index = (first.year - self.first_day.year) * 12 + first.month - self.first_day.month
        if resumed and self.lives_at_month_start:  # the plan as it was made, then the lives as they are
            lives = planner.lives_state()
            planner.set_lives(self.lives_at_month_start)
            plan = planner.month(index, first, last)
            planner.set_lives(lives)
            return plan
        self.lives_at_month_start = planner.lives_state()
        return planner.month(index, first, last)

    async def _advance(self) -> None:
        await self.eco.call("identity", "POST", "/v1/clock/advance", who="operator", json={"days": 1})

    async def _clock(self) -> date:
        return date.fromisoformat((await self.eco.call("identity", "GET", "/v1/clock", who="operator"))["date"])

    @contextlib.contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] += time.perf_counter() - started

    async def _run_day(self, day: date, actions: list[Action], planner: Planner) -> None:
        """The day's actions: employers' contributions, then every person's actions (each
        person's in order, ``concurrency`` persons at once). With a ``journal``, each unit's
        and person's finished day is recorded, and what it already records for this day (an
        earlier run that stopped mid-day) is taken back instead of being done again."""
        done_units, done_persons = self.journal.resume(day, self, planner) if self.journal else (set(), set())
        units = [a.note for a in actions if a.kind == "pay_contributions" and a.note not in done_units]

        async def unit_day(unit: str) -> None:
            with self._recorded({"u": unit}):
                await self._pay_contributions(unit, day)

        await self._each(units, unit_day, None)
        by_person: dict[int, list[Action]] = {}
        for a in actions:
            if a.person >= 0:
                by_person.setdefault(a.person, []).append(a)
        if self.calendar.is_working_day(day):
            for index, h in self.holders.items():
                if h.stamp_due and h.stamp_due <= day:
                    by_person.setdefault(index, []).insert(0, Action("stamp", index))
                elif h.receipt and not h.stamp_due and (h.ready_on is None or h.ready_on <= day):
                    by_person.setdefault(index, []).append(Action("collect", index))

        async def person_day(index: int, todo: list[Action]) -> None:
            self.holders[index].pos_calls = 0
            with self._recorded({"p": index}, planner):
                for a in todo:
                    await self._act(a, day, planner)

        await self._each([item for item in by_person.items() if item[0] not in done_persons],
                         lambda item: person_day(*item), None)

    @contextlib.contextmanager
    def _recorded(self, what: dict[str, Any], planner: Planner | None = None) -> Iterator[None]:
        """Runs the body as one unit of the day's journal (recorded when it ends without error)."""
        if self.journal is None:
            yield
            return
        doing = Doing()
        token = DOING.set(doing)
        try:
            yield
        finally:
            DOING.reset(token)
        self.journal.done(what, doing, self, planner)

    async def _each(self, items: list[Any], fn: Callable[[Any], Awaitable[None]], label: str | None) -> None:
        """``fn(item)`` for every item, ``concurrency`` at a time (workers taking the next item)."""
        pending = iter(items)

        async def worker() -> None:
            for item in pending:
                await fn(item)
                if label:
                    self.progress(label, 1)

        await asyncio.gather(*(worker() for _ in range(min(self.concurrency, len(items)))))

    # ---- actions ---------------------------------------------------------------------------
    async def _act(self, a: Action, day: date, planner: Planner) -> None:
        p = self.population.persons[a.person]
        h = self.holders[a.person]
        if not h.usable and (a.kind in OWNER_CARD_ACTIONS or a.note == "broken"):
            if a.kind == "purchase":
                self.ledger.answered("purchase_forgone")  # no usable card: the purchase is not made
            return  # the plan was made for the month; the card is gone since
        self.ledger.answered(a.kind)
        if a.kind == "purchase":
            if a.note == "typo":
                await self._pos(h, _wrong(h.pin), a.merchant, a.amount_fen, a.txn, day, a.person)
            await self._pos(h, h.pin, a.merchant, a.amount_fen, a.txn, day, a.person)
        elif a.kind == "thief":
            await self._thief(h, a, day)
        elif a.kind == "report_loss":
            await self._report_loss(p, h, a.channel)
        elif a.kind == "apply_replacement":
            await self._apply_replacement(p, h, broken=a.note == "broken", day=day)
        elif a.kind == "stamp":
            stamp = await self.eco.call("bank", "POST", "/v1/stamps", who="teller", json={
                "receipt_number": h.receipt, "branch": "中国银行储蓄所", "seal": "业务专用章"})
            self.ledger.note("stamps", stamp["receipt_number"])
            h.stamp_due = None
        elif a.kind == "collect":
            await self._collect(p, h, planner)
        elif a.kind == "forgot_pin":
            # Half-remembered: the right PIN comes to mind at a seeded try (1-8), if the card
            # is not locked before (MEDCARD_PIN_MAX_FAILURES); locked, a teller resets it.
            remembers_at = pin_try(self.population.seed, a.person, day, "remember")
            for attempt in range(1, self.settings.pin_max_failures + 1):
                pin = h.pin if attempt == remembers_at else _wrong(h.pin)
                answer = await self._pos(h, pin, self.population.designated[0].merchant_id, 100, "purchase", day,
                                         a.person)
                if answer.get("response_code") != "55":
                    break
            if answer.get("response_code") == "00":
                self.ledger.answered("holder_remembered")
            else:
                self.ledger.answered("holder_locked_out")
                h.pin = f"{(int(h.pin) + 1) % 1_000_000:06d}"
                await self.eco.call("bank", "POST", f"/v1/cards/{h.card}/password/reset", who="teller",
                                    json={"id_number": p.id_number, "new_pin": h.pin})
        elif a.kind == "change_pin":
            new = f"{(int(h.pin) + 7) % 1_000_000:06d}"
            by_phone = a.channel == "phone" and p.online  # by phone: the holder's own call
            who = await self._cardholder(p, h) if by_phone else "teller"
            at_counter = {} if by_phone else {"id_number": p.id_number}  # the teller sees the ID card
            await self.eco.call("bank", "POST", f"/v1/cards/{h.card}/password/change", who=who,
                                json={"old_pin": h.pin, "new_pin": new, "channel": "phone" if by_phone else "counter",
                                      **at_counter})
            h.pin = new
        elif a.kind == "balance":
            channel = a.channel if p.online or a.channel in ("pos", "counter") else "counter"
            if channel == "pos":  # at the terminal, with the card password
                merchant = self.population.designated[0].merchant_id
                await self.eco.call("bank", "POST", "/v1/pos/balance-inquiries", who=merchant, json={
                    "card_number": h.card, "pin": h.pin, "merchant_id": merchant})
            else:
                who = "teller" if channel == "counter" else await self._cardholder(p, h)
                await self.eco.call("bank", "GET", f"/v1/cards/{h.card}/balance", who=who,
                                    params={"channel": channel}, expect=(200, 409, 423))
        elif a.kind == "statement":
            await self.eco.call("bank", "POST", f"/v1/accounts/{h.person_id}/statement", who="teller",
                                json={"id_number": p.id_number, "from": (day - timedelta(days=90)).isoformat(),
                                      "to": day.isoformat()})

    async def _thief(self, h: Holder, a: Action, day: date) -> None:
        """Someone with the lost card tries it: guessing the PIN until it works, the card is
        refused (41 once the loss is applied) or the tries run out (75)."""
        guessed_at = pin_try(self.population.seed, a.person, day, "guess")
        answer: dict[str, Any] = {}
        for attempt in range(1, self.settings.pin_max_failures + 1):
            pin = h.pin if attempt == guessed_at else _wrong(h.pin)
            answer = await self._pos(h, pin, a.merchant, a.amount_fen, "purchase", day, a.person)
            if answer.get("response_code") != "55":
                break
        self.ledger.answered("thief_approved" if answer.get("response_code") == "00" else "thief_stopped")

    async def _pos(self, h: Holder, pin: str, merchant: str, amount: int, kind: str, day: date,
                   person: int) -> dict[str, Any]:
        """One swipe of the holder's card. Its transaction id is the terminal's, numbered from
        the day, the person and the swipe's place in their day: a swipe sent again (a resumed
        run redoing a day) gets the bank's first answer and is never debited twice."""
        h.pos_calls += 1
        answer: dict[str, Any] = await self.eco.call("bank", "POST", "/v1/pos/authorisations", who=merchant, json={
            "transaction_id": f"S{day:%Y%m%d}-{person}-{h.pos_calls}", "card_number": h.card, "pin": pin,
            "merchant_id": merchant, "amount_fen": amount, "kind": kind})
        if answer.get("authorisation_id"):
            self.ledger.note("authorisations", answer["authorisation_id"])
        return answer

    async def _cardholder(self, p: Person, h: Holder) -> str:
        key = f"person:{p.index}"
        if key not in self.eco.tokens:
            async def login() -> str:
                token = await self.eco.call("identity", "POST", "/v1/login",
                                            json={"account_number": p.account_number, "password": p.password})
                return str(token["access_token"])
            self.eco.tokens[key] = await login()
            self.eco.logins[key] = login
        return key

    async def _report_loss(self, p: Person, h: Holder, channel: str) -> None:
        if channel == "online":
            who = await self._cardholder(p, h)
            report = await self.eco.call("cards", "POST", "/v1/loss-reports/online", who=who,
                                         json={"name": p.name, "id_number": p.id_number, "mobile": p.mobile})
        else:
            report = await self.eco.call("cards", "POST", "/v1/loss-reports/bank", who="teller", json={
                "card_number": h.card, "id_number": p.id_number,
                "letter_reference": f"LP-{p.index:06d}-{self.today:%Y%m%d}"})
        self.ledger.note("vouchers", report["voucher"])
        self.ledger.loss_answered(report["block"])
        h.usable = False

    async def _apply_replacement(self, p: Person, h: Holder, *, broken: bool, day: date) -> None:
        rep = await self.eco.call("cards", "POST", "/v1/replacements", who="clerk", json={
            "card_number": h.card, "id_number": p.id_number, "broken_card": broken})
        h.receipt = rep["receipt_number"]
        h.usable = False
        self.ledger.note("receipts", h.receipt)
        h.stamp_due = self.calendar.add_working_days(day, 1)

    async def _collect(self, p: Person, h: Holder, planner: Planner) -> None:
        rep = await self.eco.call("cards", "GET", f"/v1/replacements/{h.receipt}", who="clerk")
        if rep["status"] != "ready":
            h.ready_on = date.fromisoformat(rep["ready_on"]) if rep.get("ready_on") else None
            return
        card = await self.eco.call("cards", "POST", f"/v1/replacements/{h.receipt}/collect", who="clerk",
                                   json={"id_number": p.id_number})
        h.card, h.receipt, h.ready_on = card["card_number"], "", None
        self.ledger.note("cards", h.card)
        await self._set_pin(h)
        h.usable = True
        planner.replacement_done(p.index)

    async def _pay_contributions(self, unit_key: str, day: date) -> None:
        month = f"{day.year:04d}-{day.month:02d}"
        members = [self.population.persons[i] for i in self.population.by_unit.get(unit_key, [])]
        for chunk in range(0, len(members), 1000):
            items = [{"person_id": self.holders[p.index].person_id, "amount_fen": p.contribution_fen}
                     for p in members[chunk:chunk + 1000]]
            paid = await self.eco.call("identity", "POST", "/v1/contributions", who="clerk", json={
                "unit_id": self._units[unit_key], "month": month, "items": items})
            for c in paid["data"]:
                self.ledger.note("contributions", c["contribution_id"])

    # ---- draining ----------------------------------------------------------------------
    async def drain(self, timeout: float = 600.0, services: tuple[str, ...] | None = None) -> None:
        """Wait until nothing is in flight in the event streams (see ``in_flight``).

        ``services``: only those services' outboxes and consumer groups (default: all).
        Raises UnexpectedAnswer naming what was still in flight once ``timeout`` seconds
        have passed without any service publishing or applying an event (a long backlog
        that is being worked off, as at the end of a large run, is waited for).
        """
        found = ["no look at the services and Kafka completed"]
        scope = asyncio.timeout(timeout)
        loop = asyncio.get_running_loop()
        try:
            with self._timed("drains"):
                async with scope:
                    await self._kafka_clients()
                    pause, moved = LOOK_PAUSE[0], self._moved
                    while found := await self._look(services):
                        if self._moved != moved:  # the services are working it off
                            moved = self._moved
                            scope.reschedule(loop.time() + timeout)
                        # Each look costs the services, the broker and this process CPU the run
                        # needs: the longer the streams take, the less often they are looked at.
                        await asyncio.sleep(pause)
                        pause = min(pause * 2, LOOK_PAUSE[1])
        except TimeoutError:
            if not scope.expired():
                raise
            raise UnexpectedAnswer(f"the event streams did not drain in {timeout:.0f} s: "
                                   + "; ".join(found)) from None

    async def _kafka_clients(self) -> None:
        if self._admin is None or self._ends is None:  # kept for the whole run: warm metadata
            self._admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap)
            self._ends = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, enable_auto_commit=False)
            await within(self._admin.start(), KAFKA_SECONDS, "the drain's Kafka admin client starting")
            await within(self._ends.start(), KAFKA_SECONDS, "the drain's end-offsets reader starting (Kafka)")

    async def _look(self, services: tuple[str, ...] | None) -> list[str]:
        """One look at the services and Kafka: what is still in flight (empty: drained).

        The cheap signals first (relays, consumer lag); when they are quiet, everything in
        the order events flow: messages still to be sent, outboxes as the databases count
        them, consumer lag, and the services' counters again, unchanged since the start."""
        self.timings["drain_looks"] += 1
        before = await self.eco.drain_status(services)
        self._moved = sum(sum(_progress(status)) for status in before.values())
        groups = {g: t for s in before.values() for g, t in s["groups"].items()}
        if found := in_flight(before, before, lags=await self._lags(groups)):
            return found
        waiting = await self.eco.messages_waiting() if "notifications" in before else 0
        outboxes = await self.eco.outboxes(list(before))
        lags = await self._lags(groups)
        after = await self.eco.drain_status(services)
        return in_flight(before, after, waiting, outboxes, lags)

    async def _lags(self, groups: dict[str, list[str]]) -> dict[str, int]:
        assert self._admin is not None and self._ends is not None
        lags = await asyncio.gather(*(group_lag(self._admin, self._ends, {g: t}, self.settings.namespace)
                                      for g, t in groups.items()))
        return dict(zip(groups, lags, strict=True))


def in_flight(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]], messages_waiting: int = 0,
              outboxes: dict[str, dict[str, Any]] | None = None, lags: dict[str, int] | None = None) -> list[str]:
    """What one look found still in flight, in words (empty: the streams have drained).

    ``before`` and ``after``: each service's ``/ops/drain`` at the start and at the end of
    the look; in between, read in the order events flow: notifications' messages still to
    be sent (``messages_waiting``), each service's ``/ops/outbox`` and each consumer group's
    lag. An event moving along while the look reads past it is caught by the counters: a
    relay publishing or a consumer applying changes them between ``before`` and ``after``.
    A relay's idle flag alone is not enough: it knows only what it was told about, and the
    notifications service writes events (NotificationSent) after its consumer caught up."""
    found = []
    if busy := sorted(s for s in after if not (before[s]["relay_idle"] and after[s]["relay_idle"])):
        found.append(f"relays busy: {busy}")
    if messages_waiting:
        found.append("notifications has messages still to send")
    if pending := {s: o["by_collection"] for s, o in (outboxes or {}).items() if o["pending"]}:
        found.append(f"pending outbox documents: {pending}")
    if lag := {g: n for g, n in (lags or {}).items() if n}:
        found.append(f"consumer lag: {lag}")
    if moved := sorted(s for s in after if _progress(before[s]) != _progress(after[s])):
        found.append(f"events published or applied during the look: {moved}")
    return found


def _progress(status: dict[str, Any]) -> tuple[int, int, int]:
    return status["published"], status["applied"], status["dead_lettered"]


async def group_lag(admin: AIOKafkaAdminClient, ends: AIOKafkaConsumer, groups: dict[str, list[str]],
                    namespace: str) -> int:
    """Total lag of the given consumer groups over every partition of the topics they consume
    (a partition the group never committed counts from offset 0)."""
    total = 0
    for group, topics in groups.items():
        committed: dict[TopicPartition, Any] = await admin.list_consumer_group_offsets(group)
        parts = [TopicPartition(t, p) for t in topics for p in range(partitions_of(t, namespace))]
        end = await ends.end_offsets(parts)
        total += sum(max(0, end[tp] - (committed[tp].offset if tp in committed else 0)) for tp in parts)
    return total


GUESSABLE_SHARE = 0.25
"""Share of lost cards whose PIN a thief can guess (a birthday, 123456...): at a seeded try 1-8."""


def pin_try(seed: int, person: int, day: date, what: str) -> int:
    """The seeded try (1-8) at which the right PIN is typed: a cardholder remembering it, or
    a thief guessing it (0: the thief never does)."""
    rng = random.Random(f"pin:{what}:{seed}:{person}:{day.isoformat()}")
    if what == "guess" and rng.random() >= GUESSABLE_SHARE:
        return 0
    return rng.randint(1, 8)


def _wrong(pin: str) -> str:
    return f"{(int(pin) + 1) % 1_000_000:06d}"


def seeded_start(seed: int) -> date:
    """The simulation starts on the first day of a month chosen by the seed (2026-2029)."""
    rng = random.Random(f"start:{seed}")
    return date(2026 + rng.randrange(0, 4), rng.randrange(1, 13), 1)
