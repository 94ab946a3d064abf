"""What the people of the simulation intend to do, day by day, reproducible from the seed.

The planner keeps each person's own view of their card (usable, lost, waiting for a
replacement) so that plans make sense; the services decide the outcomes. Pure: no I/O.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from shared.calendar import BusinessCalendar

from .population import Population


@dataclass(frozen=True)
class Rates:
    """Rates of the simulation; the defaults aim at a lively but ordinary month."""

    purchases_per_month: float = 3.0
    shop_share: float = 0.05
    """Purchase attempts at a non-designated shop (refused: 58)."""
    cash_share: float = 0.02
    """Attempts to withdraw cash or transfer (refused: 57)."""
    pin_typo_share: float = 0.04
    """Purchases where the PIN is first mistyped once (55), then typed right."""
    forgot_pin_rate: float = 0.005
    """Per person and month: tries wrong PINs until locked (75), then a teller resets it."""
    loss_rate: float = 0.01
    """Per person and month: the card is lost."""
    bank_loss_share: float = 0.3
    """Losses reported at the bank counter (always, for people without an online account)."""
    thief_share: float = 0.5
    """Lost cards someone else then tries to use, before or after the report."""
    broken_rate: float = 0.002
    """Per person and month: the card breaks and is replaced without a loss report."""
    balance_inquiry_rate: float = 0.2
    password_change_rate: float = 0.01
    statement_rate: float = 0.05


@dataclass(frozen=True)
class Action:
    kind: str
    person: int
    merchant: str = ""
    amount_fen: int = 0
    txn: str = "purchase"
    channel: str = ""
    note: str = ""


@dataclass
class _Life:
    card_ok: bool = True
    waiting: bool = False


@dataclass
class Planner:
    population: Population
    rates: Rates
    calendar: BusinessCalendar
    lives: dict[int, _Life] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lives = {p.index: _Life() for p in self.population.persons}

    def month(self, month_index: int, first: date, last: date) -> dict[date, list[Action]]:
        """The plan of one month: day -> actions (one person's actions in order)."""
        rng = random.Random(f"plan:{self.population.seed}:{month_index}")
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        working = [d for d in days if self.calendar.is_working_day(d)] or days
        plan: dict[date, list[Action]] = defaultdict(list)
        plan[working[0]].extend(Action("pay_contributions", -1, note=u.key) for u in self.population.units)
        r = self.rates
        for person in self.population.persons:
            life = self.lives[person.index]
            for _ in range(_poisson(rng, r.purchases_per_month)):
                day = rng.choice(days)
                if not life.card_ok:
                    continue
                roll = rng.random()
                if roll < r.shop_share:
                    m = rng.choice(self.population.shops)
                    plan[day].append(Action("purchase", person.index, m.merchant_id, _amount(rng, "shop")))
                elif roll < r.shop_share + r.cash_share:
                    m = rng.choice(self.population.designated)
                    txn = "cash_withdrawal" if rng.random() < 0.7 else "transfer"
                    plan[day].append(Action("purchase", person.index, m.merchant_id, _amount(rng, "shop"), txn))
                else:
                    m = rng.choice(self.population.designated)
                    typo = "typo" if rng.random() < r.pin_typo_share else ""
                    plan[day].append(Action("purchase", person.index, m.merchant_id, _amount(rng, m.kind),
                                            note=typo))
            if rng.random() < r.balance_inquiry_rate:
                plan[rng.choice(days)].append(
                    Action("balance", person.index, channel=rng.choice(("phone", "counter", "pos", "online"))))
            if rng.random() < r.statement_rate:
                plan[rng.choice(working)].append(Action("statement", person.index))
            if life.card_ok and rng.random() < r.password_change_rate:
                plan[rng.choice(days)].append(Action("change_pin", person.index, channel=rng.choice(("phone", "counter"))))
            if life.card_ok and rng.random() < r.forgot_pin_rate:
                plan[rng.choice(working)].append(Action("forgot_pin", person.index))
            if life.card_ok and not life.waiting:
                if rng.random() < r.loss_rate:
                    self._lose(rng, person.index, rng.choice(working[:-1] or working), plan, working)
                elif rng.random() < r.broken_rate:
                    day = rng.choice(working)
                    plan[day].append(Action("apply_replacement", person.index, note="broken"))
                    life.waiting = True
        return dict(plan)

    def _lose(self, rng: random.Random, index: int, day: date, plan: dict[date, list[Action]],
              working: list[date]) -> None:
        person = self.population.persons[index]
        life = self.lives[index]
        channel = "bank" if (not person.online or rng.random() < self.rates.bank_loss_share) else "online"
        thief = rng.random() < self.rates.thief_share
        merchant = rng.choice(self.population.designated).merchant_id
        if thief and rng.random() < 0.5:  # tried before the owner notices
            plan[day].append(Action("thief", index, merchant, _amount(rng, "pharmacy"), note="before"))
        plan[day].append(Action("report_loss", index, channel=channel))
        later = [d for d in working if d > day]
        if thief and later:  # after the report: the same day (later on) or one of the next working days
            when = day if rng.random() < 0.5 else rng.choice(later[:3])
            plan[when].append(Action("thief", index, merchant, _amount(rng, "pharmacy"), note="after"))
        apply_day = later[0] if later else day
        plan[apply_day].append(Action("apply_replacement", index, note="lost"))
        life.card_ok = False
        life.waiting = True

    def lives_state(self) -> list[list[bool]]:
        """Each person's card as the planner sees it ([card_ok, waiting], by index): plain data."""
        return [[life.card_ok, life.waiting] for _, life in sorted(self.lives.items())]

    def set_lives(self, state: list[list[bool]]) -> None:
        self.lives = {i: _Life(card_ok, waiting) for i, (card_ok, waiting) in enumerate(state)}

    def life(self, index: int) -> list[bool]:
        life = self.lives[index]
        return [life.card_ok, life.waiting]

    def set_life(self, index: int, state: list[bool]) -> None:
        self.lives[index] = _Life(*state)

    def replacement_done(self, index: int) -> None:
        self.lives[index] = _Life()


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth; small means only.
    limit, k, p = pow(2.718281828459045, -mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _amount(rng: random.Random, kind: str) -> int:
    low, high = {"hospital": (2_000, 60_000), "pharmacy": (800, 15_000), "shop": (500, 8_000)}[kind]
    return rng.randrange(low, high) // 10 * 10
