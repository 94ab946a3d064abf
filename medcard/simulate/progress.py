"""A simulation's progress, kept on disk so that a stopped or crashed run can be resumed
(``medcard simulate --resume``) from the last completed business day.

Three files in the progress folder:

- ``progress.json``: small and rewritten whole (atomically: a temporary file renamed over
  it) once a business day's actions are all answered: the run's options, its namespace and
  the secrets its services were started with, the date, what every simulated person holds
  (person id, card, replacement receipt, how far their PIN moved from the population's),
  the planner's view of each person's card, the counters of answers. No PIN, password or
  ID number is written: a person's PIN is the population's (rebuilt from the seed) moved by
  the number of changes and resets the run made. The file is readable by its owner only
  (it holds the services' signing keys and the operator's password, as their environment does).
- ``day.jsonl``: the business day under way, unit by unit and person by person (see
  ``DayJournal``), so that a run stopped in the middle of a day does not do again what it did.
- ``ledger.jsonl``: the ids of what the services accepted (persons, cards, vouchers,
  receipts, stamps, authorisations, contributions), appended day by day, for the final
  ``nothing_lost`` check; ``progress.json`` says how many of its bytes belong to the
  checkpoint, so lines written after it (a crash between the two writes) are cut off.

Pure apart from the file reads and writes: the state is plain data (no I/O to services).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

VERSION = 1
PROGRESS = "progress.json"
LEDGER = "ledger.jsonl"
DAY = "day.jsonl"
LEDGER_KINDS = ("persons", "cards", "vouchers", "receipts", "stamps", "authorisations", "contributions")


class NothingToResume(RuntimeError):
    """No usable progress file: the run must start anew."""


@dataclass
class Checkpoint:
    """Everything, beyond the topics and the services' databases, that the run needs to go on."""

    options: dict[str, Any]
    """persons, months, seed, rates, holidays, fast_hashing, faults: the run's business options."""
    namespace: str
    secrets: dict[str, str]
    """The services' keys (``SECRET_SETTINGS``), the operator's and the staff's passwords."""
    start: date
    first_day: date
    """The first simulated day (after the opening month)."""
    today: date
    """The business day the checkpoint is about."""
    acted: bool
    """True: every action of ``today`` was answered (the clock may or may not have advanced
    past it). False: nothing of ``today`` was done yet."""
    day_number: int
    units: dict[str, str]
    holders: list[dict[str, Any]]
    lives_at_month_start: list[list[bool]]
    lives: list[list[bool]]
    answers: dict[str, int] = field(default_factory=dict)
    loss_answers: dict[str, int] = field(default_factory=dict)
    ledger_bytes: int = 0
    elapsed_seconds: float = 0.0
    """Wall time of the runs before this one (the report's is the sum)."""
    faults: dict[str, Any] = field(default_factory=dict)
    """The fault injector's counts and log so far (a run with ``--faults``)."""
    peak_memory_mb: dict[str, float | None] = field(default_factory=dict)
    """Each process's peak resident set over the runs so far (the highest of their peaks)."""
    cpu_seconds: dict[str, float | None] = field(default_factory=dict)
    """Each process's CPU time over the runs so far (their sum)."""

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__.items())
        for k in ("start", "first_day", "today"):
            out[k] = out[k].isoformat()
        return {"version": VERSION, **out}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Checkpoint:
        if raw.get("version") != VERSION:
            raise NothingToResume(f"progress file of version {raw.get('version')}, this simulator writes {VERSION}")
        raw = {k: v for k, v in raw.items() if k != "version"}
        for k in ("start", "first_day", "today"):
            raw[k] = date.fromisoformat(raw[k])
        return cls(**raw)


Usage = tuple[dict[str, float | None], dict[str, float | None]]
"""(peak memory in MiB, CPU seconds) by process name."""


def combined_usage(before: Usage, now: Usage) -> Usage:
    """The processes' usage over a run made of pieces (stopped, then resumed): the highest
    peak, the sum of the CPU times. A figure unknown in one piece (None, absent) is the
    other piece's."""
    peaks, cpus = dict(before[0]), dict(before[1])
    for name, peak in now[0].items():
        if peak is not None:
            known = peaks.get(name)
            peaks[name] = peak if known is None else max(known, peak)
        else:
            peaks.setdefault(name, None)
    for name, cpu in now[1].items():
        if cpu is not None:
            cpus[name] = round((cpus.get(name) or 0.0) + cpu, 2)
        else:
            cpus.setdefault(name, None)
    return peaks, cpus


def holder_state(h: Any, population_pin: str) -> dict[str, Any]:
    """What one simulated person holds, without their PIN (its shift from the population's)."""
    return {"person_id": h.person_id, "card": h.card, "receipt": h.receipt,
            "stamp_due": h.stamp_due.isoformat() if h.stamp_due else None, "usable": h.usable,
            "ready_on": h.ready_on.isoformat() if h.ready_on else None,
            "pin_shift": (int(h.pin) - int(population_pin)) % 1_000_000}


def holder_fields(state: dict[str, Any], population_pin: str) -> dict[str, Any]:
    """The fields of a Holder from ``holder_state`` (the PIN moved back by its shift)."""
    return {"person_id": state["person_id"], "card": state["card"], "receipt": state["receipt"],
            "stamp_due": date.fromisoformat(state["stamp_due"]) if state["stamp_due"] else None,
            "ready_on": date.fromisoformat(state["ready_on"]) if state.get("ready_on") else None,  # none before 2026-12
            "usable": state["usable"], "pin": f"{(int(population_pin) + state['pin_shift']) % 1_000_000:06d}"}


@dataclass
class ProgressFiles:
    """The progress folder of one run."""

    folder: Path

    @property
    def progress(self) -> Path:
        return self.folder / PROGRESS

    @property
    def ledger(self) -> Path:
        return self.folder / LEDGER

    @property
    def day(self) -> Path:
        return self.folder / DAY

    def start_anew(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for path in (self.progress, self.ledger, self.day):
            path.unlink(missing_ok=True)

    def save(self, checkpoint: Checkpoint, new_ids: list[tuple[str, str]]) -> None:
        """Append ``new_ids`` (kind, id) to the ledger, then write the checkpoint that counts them."""
        self.folder.mkdir(parents=True, exist_ok=True)
        by_kind: dict[str, list[str]] = {}
        for kind, ident in new_ids:
            by_kind.setdefault(kind, []).append(ident)
        with self.ledger.open("ab") as f:
            f.truncate(checkpoint.ledger_bytes)  # lines after the last checkpoint are not counted
            f.seek(checkpoint.ledger_bytes)
            if by_kind:
                f.write((json.dumps(by_kind, separators=(",", ":")) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())
            checkpoint.ledger_bytes = f.tell()
        tmp = self.progress.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(checkpoint.to_json(), f, separators=(",", ":"), ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.progress)

    def load(self) -> tuple[Checkpoint, dict[str, set[str]]]:
        """The last checkpoint and the ledger's ids up to it."""
        try:
            raw = json.loads(self.progress.read_text())
        except FileNotFoundError:
            raise NothingToResume(f"no progress file at {self.progress}: nothing to resume") from None
        checkpoint = Checkpoint.from_json(raw)
        ledger: dict[str, set[str]] = {k: set() for k in LEDGER_KINDS}
        if checkpoint.ledger_bytes:
            with self.ledger.open("rb") as f:
                data = f.read(checkpoint.ledger_bytes)
            for line in data.splitlines():
                for kind, ids in json.loads(line).items():
                    ledger[kind].update(ids)
        return checkpoint, ledger


@dataclass
class DayJournal:
    """The business day under way, unit by unit and person by person: each line one
    employer's contributions or one person's whole day, written (and flushed) once done,
    with what it added to the ledger and what the person then holds. A run that stops in
    the middle of a day leaves it here; the resumed run takes those back and does only the
    rest. A person whose day was under way at a crash has it done again from its start:
    their swipes get the bank's first answers (the terminal's transaction ids are the
    same), their other actions are sent again."""

    path: Path
    _file: Any = None

    def resume(self, day: date, driver: Any, planner: Any) -> tuple[set[str], set[int]]:
        """Start recording ``day``; the units and persons an earlier run recorded for it are
        taken back into ``driver`` and ``planner`` and returned (they are not done again)."""
        kept: list[str] = []
        units: set[str] = set()
        persons: set[int] = set()
        lines = self.path.read_text().splitlines() if self.path.exists() else []
        if lines and _header_day(lines[0]) == day:
            for line in lines[1:]:
                try:
                    record = json.loads(line)
                except ValueError:
                    break  # the line being written when the run stopped
                kept.append(line)
                self._take_back(record, driver, planner)
                if "u" in record:
                    units.add(record["u"])
                else:
                    persons.add(record["p"])
        if self._file is not None:
            self._file.close()
        self._file = self.path.open("w", encoding="utf-8")
        self._file.write("\n".join([json.dumps({"day": day.isoformat()}), *kept]) + "\n")
        self._file.flush()
        return units, persons

    @staticmethod
    def _take_back(record: dict[str, Any], driver: Any, planner: Any) -> None:
        for kind, ident in record["l"]:
            driver.ledger.note(kind, ident)
        driver.ledger.answers.update(record["a"])
        driver.ledger.loss_answers.update(record["x"])
        if "p" in record:
            index = record["p"]
            person = driver.population.persons[index]
            driver.holders[index] = type(driver.holders[index])(id_number=person.id_number,
                                                                **holder_fields(record["h"], person.pin))
            planner.set_life(index, record["life"])

    def done(self, what: dict[str, Any], doing: Any, driver: Any, planner: Any) -> None:
        record = {**what, "l": doing.ids, "a": dict(doing.answers), "x": dict(doing.loss_answers)}
        if "p" in what:
            index = what["p"]
            record["h"] = holder_state(driver.holders[index], driver.population.persons[index].pin)
            record["life"] = planner.life(index)
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()  # in the kernel's hands: a crash of this process does not lose it

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _header_day(line: str) -> date | None:
    try:
        return date.fromisoformat(json.loads(line)["day"])
    except (ValueError, KeyError, TypeError):
        return None
