"""Every read of a flag names the flag's partial index.

DocumentDB's planner has no statistics of a field inside the documents and guesses that a
flag is true in half of them: a read of ``{flag: True}`` that does not name the index reads
the whole table (the relay's scan of 2.8 million messages took 19 s, and the cards' daily
sweep of the cardholders in production read every cardholder). ``find_flagged`` and
``count_flagged`` name it; this test finds any read of an indexed flag written without them.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for d in ("services", "shared", "medcard") for p in (ROOT / d).rglob("*.py")]
INDEXED = re.compile(r'flag_index\([^,]+,\s*"(\w+)"\)')


def _indexed_flags() -> set[str]:
    return {m for p in SOURCES for m in INDEXED.findall(p.read_text(encoding="utf-8"))} | {"pending"}


def test_the_indexed_flags_are_found() -> None:
    assert {"pending", "losses_pending", "held", "in_production"} <= _indexed_flags()


def test_no_read_of_an_indexed_flag_is_written_by_hand() -> None:
    flags = "|".join(sorted(_indexed_flags()))
    by_hand = re.compile(r'(find|count\w*|find_one)\(.*\{\s*"(' + flags + r')"\s*:\s*True')
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in SOURCES
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if by_hand.search(line) and p.name != "database.py"]
    assert found == []
