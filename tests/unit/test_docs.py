"""The documentation a newcomer reads: the README stays short and every link in it and in
``docs/`` leads to a file of the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_readme_is_under_250_lines_and_names_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 250
    assert "./run.sh" in text and "./test.sh" in text


def test_the_domain_notes_and_the_source_documents_are_in_the_repository() -> None:
    assert (ROOT / "docs" / "domain.md").is_file()
    assert len(list((ROOT / "docs" / "sources").glob("*.txt"))) == 2


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file(document: Path) -> None:
    broken = [target for target in LINK.findall(document.read_text())
              if "://" not in target and not (document.parent / target).exists()]
    assert broken == []
