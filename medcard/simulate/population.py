"""A population reproducible from a seed: insured units and their employees, and the
hospitals, pharmacies and shops where cards are used. Pure: no I/O.

A run tag (a run against services that are already running, whose registers keep every
earlier run's people) changes only what must be unique in those registers: ID numbers,
account numbers, merchant ids and staff usernames. Names, mobiles, PINs, contributions and
everything the plan draws stay those of the seed, so the tag moves no business outcome."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from shared.ids import PROVINCES, make_id_number

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"  # noqa: E501 - one string of characters
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍鹏辉玲建国红文斌宇浩凯欣怡晨雪梅林海波燕颖琳"
REGIONS = ("110101", "110105", "110108", "310101", "310104", "440103", "440106", "510104", "330102", "320102")
COMPANIES = ("科技", "贸易", "制造", "物流", "餐饮", "建设", "医药", "教育", "咨询", "传媒")


@dataclass(frozen=True)
class Unit:
    key: str
    name: str


@dataclass(frozen=True)
class Person:
    index: int
    name: str
    id_number: str
    mobile: str
    household_registration: str
    unit_key: str
    language: str
    online: bool
    """Has an online account (needed to report a loss online)."""
    account_number: str
    password: str
    pin: str
    contribution_fen: int
    """Personal-account share credited each month."""


@dataclass(frozen=True)
class Merchant:
    merchant_id: str
    name: str
    kind: str
    designated: bool


@dataclass
class Population:
    seed: int
    units: list[Unit]
    persons: list[Person]
    merchants: list[Merchant]
    by_unit: dict[str, list[int]] = field(default_factory=dict)
    tag: str = ""
    """The run tag mixed into the identifiers (empty: the seed's identifiers, as ever)."""

    def staff(self, name: str) -> str:
        """The username of the run's clerk or teller (``name``, tagged in a tagged run)."""
        return f"{name}-{self.tag}" if self.tag else name

    @property
    def designated(self) -> list[Merchant]:
        return [m for m in self.merchants if m.designated]

    @property
    def shops(self) -> list[Merchant]:
        return [m for m in self.merchants if not m.designated]


def build_population(seed: int, persons: int, *, online_share: float = 0.7, tag: str = "") -> Population:
    """``tag``: see the module's note; the population of a tag differs from the untagged one
    only in its identifiers."""
    rng = random.Random(f"population:{seed}")
    tagged_ids = _TaggedIdNumbers(seed, tag) if tag else None
    n_units = max(1, persons // 50)
    units = [Unit(f"U{seed}-{i:05d}", f"{rng.choice(('北京', '上海', '广州', '成都', '杭州'))}"
                  f"{rng.choice(COMPANIES)}{i}有限公司") for i in range(n_units)]
    people: list[Person] = []
    used_serials: set[tuple[str, date, int]] = set()
    for i in range(persons):
        region = rng.choice(REGIONS)
        birth = date(1960, 1, 1) + timedelta(days=rng.randrange(0, 365 * 45))
        serial = rng.randrange(0, 1000)
        while (region, birth, serial) in used_serials:
            serial = (serial + 1) % 1000
        used_serials.add((region, birth, serial))
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        people.append(Person(
            index=i,
            name=name,
            id_number=tagged_ids.next() if tagged_ids else make_id_number(region, birth, serial),
            mobile="1" + rng.choice("3456789") + f"{rng.randrange(0, 10**9):09d}",
            household_registration=f"HR{rng.randrange(10**9, 10**10)}",
            unit_key=units[i % n_units].key,
            language="en" if rng.random() < 0.1 else "zh",
            online=rng.random() < online_share,
            account_number=f"s{seed}{tag}u{i:06d}",
            password=f"pw-{rng.randrange(10**8, 10**9)}",
            pin=f"{rng.randrange(0, 10**6):06d}",
            contribution_fen=rng.randrange(8_000, 60_000),
        ))
    n_merchants = max(6, persons // 40)
    merchants = []
    for i in range(n_merchants):
        kind = ("hospital", "pharmacy", "pharmacy", "shop")[i % 4]
        merchants.append(Merchant(
            merchant_id=f"M{seed}{tag}-{i:04d}",
            name=f"{rng.choice(('仁和', '同仁', '康泰', '益民', '华润', '天坛'))}"
                 f"{ {'hospital': '医院', 'pharmacy': '大药房', 'shop': '超市'}[kind]}{i}",
            kind=kind,
            designated=kind != "shop",
        ))
    population = Population(seed, units, people, merchants, tag=tag)
    for p in people:
        population.by_unit.setdefault(p.unit_key, []).append(p.index)
    return population


class _TaggedIdNumbers:
    """ID numbers drawn apart from the business draws, from the seed and the tag, over every
    province, any region digits, 65 years of birth dates and the 1,000 serials (about 8e12
    numbers): unique within the run, and two runs of 1,000 persons share one with odds of
    about one in eight million (a shared one is refused by identity, naming it)."""

    def __init__(self, seed: int, tag: str) -> None:
        self.rng = random.Random(f"id-numbers:{seed}:{tag}")
        self.provinces = sorted(PROVINCES)
        self.used: set[str] = set()

    def next(self) -> str:
        while True:
            rng = self.rng
            region = f"{rng.choice(self.provinces)}{rng.randrange(0, 10_000):04d}"
            number = make_id_number(region, date(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 65)),
                                    rng.randrange(0, 1000))
            if number not in self.used:
                self.used.add(number)
                return number
