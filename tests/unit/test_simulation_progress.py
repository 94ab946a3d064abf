"""A simulation's progress on disk (``--resume``): what it keeps, what it never keeps, and a
month's plan made again from it."""

from __future__ import annotations

import json
import stat
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from medcard.simulate.cli import ProgressLines
from medcard.simulate.driver import Holder
from medcard.simulate.plan import Planner, Rates
from medcard.simulate.population import build_population
from medcard.simulate.progress import (Checkpoint, NothingToResume, ProgressFiles, combined_usage, holder_fields,
                                      holder_state)
from shared.calendar import BusinessCalendar

CAL = BusinessCalendar()


def checkpoint(**changes: object) -> Checkpoint:
    fields: dict[str, object] = {
        "options": {"persons": 2, "months": 1, "seed": 7}, "namespace": "sim7xabc", "secrets": {"jwt_secret": "k"},
        "start": date(2026, 3, 1), "first_day": date(2026, 4, 1), "today": date(2026, 4, 9), "acted": True,
        "day_number": 8, "units": {"U7-00000": "U1"}, "holders": [], "lives_at_month_start": [[True, False]],
        "lives": [[False, True]], "answers": {"purchase": 3}, "loss_answers": {"pending": 1}}
    fields.update(changes)
    return Checkpoint(**fields)  # type: ignore[arg-type]


def test_a_holder_is_kept_without_pin_or_id_number_and_comes_back_the_same() -> None:
    h = Holder(person_id="P1", id_number="110101199001010011", card="6216610000000000018", pin="999998",
               receipt="R1", stamp_due=date(2026, 4, 10), usable=False)
    state = holder_state(h, population_pin="999995")
    assert state["pin_shift"] == 3
    assert "999998" not in json.dumps(state) and "110101199001010011" not in json.dumps(state)
    assert Holder(id_number=h.id_number, **holder_fields(state, "999995")) == h
    wrapped = Holder(person_id="P2", pin="000002")  # a PIN moved past 999999 wraps round
    assert holder_fields(holder_state(wrapped, "999999"), "999999")["pin"] == "000002"
    waiting = Holder(person_id="P3", pin="123456", receipt="R3", ready_on=date(2026, 5, 4))  # told when ready
    assert Holder(**holder_fields(holder_state(waiting, "000000"), "000000")) == waiting
    older = {k: v for k, v in holder_state(waiting, "000000").items() if k != "ready_on"}  # a checkpoint from before
    assert holder_fields(older, "000000")["ready_on"] is None


def test_a_checkpoint_and_its_ledger_come_back_and_later_lines_are_cut_off(tmp_path: Path) -> None:
    files = ProgressFiles(tmp_path / "progress")
    files.start_anew()
    first = checkpoint(acted=False, today=date(2026, 4, 1))
    files.save(first, [("persons", "P1"), ("persons", "P2"), ("cards", "C1")])
    second = checkpoint(ledger_bytes=first.ledger_bytes)
    files.save(second, [("authorisations", "A1")])
    with files.ledger.open("a") as f:  # a crash after the ledger's append, before the checkpoint's
        f.write(json.dumps({"authorisations": ["A2"]}) + "\n")
    loaded, ledger = files.load()
    assert loaded == second
    assert ledger["persons"] == {"P1", "P2"} and ledger["cards"] == {"C1"} and ledger["authorisations"] == {"A1"}
    assert stat.S_IMODE(files.progress.stat().st_mode) == 0o600  # it holds the services' keys
    # The next checkpoint writes over the uncounted line.
    third = checkpoint(ledger_bytes=second.ledger_bytes, day_number=9)
    files.save(third, [("stamps", "R1")])
    assert files.load()[1]["authorisations"] == {"A1"} and files.load()[1]["stamps"] == {"R1"}


def test_without_a_progress_file_there_is_nothing_to_resume(tmp_path: Path) -> None:
    with pytest.raises(NothingToResume):
        ProgressFiles(tmp_path).load()
    (tmp_path / "progress.json").write_text(json.dumps({**checkpoint().to_json(), "version": 0}))
    with pytest.raises(NothingToResume, match="version 0"):
        ProgressFiles(tmp_path).load()


def test_a_months_plan_is_made_again_the_same_from_the_lives_kept_at_its_start() -> None:
    population = build_population(5, 400)
    rates = Rates(loss_rate=0.2, broken_rate=0.1)
    planner = Planner(population, rates, CAL)
    planner.month(0, date(2026, 3, 1), date(2026, 3, 31))
    planner.replacement_done(3)
    at_start = planner.lives_state()
    plan = planner.month(1, date(2026, 4, 1), date(2026, 4, 30))
    planner.replacement_done(7)
    now = planner.lives_state()

    again = Planner(population, rates, CAL)
    again.set_lives(at_start)
    assert again.month(1, date(2026, 4, 1), date(2026, 4, 30)) == plan
    again.set_lives(now)
    assert again.lives_state() == now
    assert again.month(2, date(2026, 5, 1), date(2026, 5, 31)) == planner.month(2, date(2026, 5, 1),
                                                                                 date(2026, 5, 31))


def test_a_day_stopped_midway_gives_back_what_was_done_and_only_that(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from medcard.simulate.driver import Doing, Ledger
    from medcard.simulate.progress import DayJournal

    population = build_population(3, 5)

    def world() -> tuple[SimpleNamespace, Planner]:
        holders = {p.index: Holder(person_id=f"P{p.index}", id_number=p.id_number, card=f"C{p.index}", pin=p.pin)
                   for p in population.persons}
        return (SimpleNamespace(ledger=Ledger(), holders=holders, population=population),
                Planner(population, Rates(), CAL))

    day = date(2026, 4, 9)
    driver, planner = world()
    journal = DayJournal(tmp_path / "day.jsonl")
    assert journal.resume(day, driver, planner) == (set(), set())
    journal.done({"u": "U3-00000"}, Doing(ids=[("contributions", "K1")]), driver, planner)
    driver.holders[2].card, driver.holders[2].pin, driver.holders[2].usable = "C9", "123456", False
    planner.set_life(2, [False, True])
    journal.done({"p": 2}, Doing(ids=[("vouchers", "V1")], answers=Counter(report_loss=1),
                                loss_answers=Counter(pending=1)), driver, planner)
    journal.close()
    with journal.path.open("a") as f:
        f.write('{"p": 4, "l": [')  # the line being written when the run was killed

    again, again_planner = world()
    assert DayJournal(journal.path).resume(day, again, again_planner) == ({"U3-00000"}, {2})
    assert again.holders[2] == driver.holders[2] and again.holders[4] == world()[0].holders[4]
    assert again_planner.life(2) == [False, True]
    assert again.ledger.contributions == {"K1"} and again.ledger.vouchers == {"V1"}
    assert again.ledger.answers == Counter(report_loss=1) and again.ledger.loss_answers == Counter(pending=1)
    assert "123456" not in journal.path.read_text()
    # Another day's journal gives nothing back.
    third, third_planner = world()
    assert DayJournal(journal.path).resume(date(2026, 4, 10), third, third_planner) == (set(), set())


def test_a_run_in_a_log_writes_a_line_per_twentieth_of_a_phase_and_per_day() -> None:
    now = [100.0]
    lines = ProgressLines({"register": 100, "cards": 100, "days": 62}, clock=lambda: now[0])
    written = []
    for _ in range(100):
        now[0] += 1.0
        written.append(lines.advance("register", 1))
    shown = [w for w in written if w]
    assert len(shown) == 20  # 5, 10, ... 100
    assert shown[0] == "0:00:05 registering people: 5 of 100"
    assert shown[-1] == "0:01:40 registering people: 100 of 100"
    now[0] += 3600
    assert lines.advance("days", 1) == "1:01:40 simulated days: 1 of at most 62"
    assert lines.advance("days", 1) == "1:01:40 simulated days: 2 of at most 62"
    assert lines.advance("cards", 100) == "1:01:40 issuing cards: 100 of 100"  # a resumed run: all at once
    assert lines.advance("cards", 0) is None and lines.advance("unknown", 1) is None


def test_a_run_in_pieces_reports_its_processes_highest_peak_and_summed_cpu() -> None:
    before = ({"bank": 120.5, "cards": None}, {"bank": 30.0, "simulator": 12.25, "cards": None})
    now = ({"bank": 110.0, "cards": 90.0, "identity": None}, {"bank": 5.5, "simulator": 1.0, "cards": 2.0,
                                                            "identity": None})
    peaks, cpus = combined_usage(before, now)
    assert peaks == {"bank": 120.5, "cards": 90.0, "identity": None}
    assert cpus == {"bank": 35.5, "simulator": 13.25, "cards": 2.0, "identity": None}
    assert combined_usage(({}, {}), now) == ({"bank": 110.0, "cards": 90.0, "identity": None}, now[1])
    assert before == ({"bank": 120.5, "cards": None}, {"bank": 30.0, "simulator": 12.25, "cards": None})  # untouched
    saved = Checkpoint.from_json(json.loads(json.dumps(Checkpoint(
        options={}, namespace="n", secrets={}, start=date(2028, 11, 1), first_day=date(2028, 12, 1),
        today=date(2028, 12, 5), acted=True, day_number=4, units={}, holders=[], lives_at_month_start=[], lives=[],
        peak_memory_mb=peaks, cpu_seconds=cpus).to_json())))
    assert (saved.peak_memory_mb, saved.cpu_seconds) == (peaks, cpus)
