"""A published schema is immutable: the check compares with what git has committed, and
the generator never rewrites a published version incompatibly, whatever the flags."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shared.contract import generate
from shared.contract.compat import check_contract
from shared.contract.schemas import all_event_schemas

LOST = "cn.medcard.cards.CardLost.v1"
LOST_V2 = "cn.medcard.cards.CardLost.v2"


def without_voucher(schema: dict[str, Any]) -> dict[str, Any]:
    """The CardLost schema with a required field removed: a breaking change."""
    changed = copy.deepcopy(schema)
    del changed["properties"]["voucher"]
    changed["required"].remove("voucher")
    return changed


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid",
                    "-c", "commit.gpgsign=false", *args], check=True, capture_output=True)


def write_schema(schemas: Path, event_type: str, schema: dict[str, Any]) -> None:
    schemas.mkdir(parents=True, exist_ok=True)
    (schemas / f"{event_type}.json").write_text(json.dumps(schema), encoding="utf-8")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose main branch has published CardLost v1."""
    git(tmp_path, "init", "-q", "-b", "main")
    write_schema(tmp_path / "contract" / "schemas", LOST, all_event_schemas()[LOST])
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "publish v1")
    return tmp_path


def test_a_schema_rewritten_in_the_working_tree_is_still_checked_against_head(repo: Path) -> None:
    schemas, changed = repo / "contract" / "schemas", without_voucher(all_event_schemas()[LOST])
    # What `generate --allow-breaking` used to do: the file now agrees with the changed model.
    write_schema(schemas, LOST, changed)
    assert check_contract(schemas, {LOST: changed}) == [
        f"{LOST}: field 'voucher' was removed (against HEAD)"]


def test_a_branch_that_commits_the_rewrite_is_checked_against_main(repo: Path) -> None:
    schemas, changed = repo / "contract" / "schemas", without_voucher(all_event_schemas()[LOST])
    git(repo, "switch", "-q", "-c", "feature")
    write_schema(schemas, LOST, changed)
    git(repo, "commit", "-q", "-am", "rewrite v1 in place")
    [line] = check_contract(schemas, {LOST: changed})
    assert line.startswith(f"{LOST}: field 'voucher' was removed (against main (merge base ")


def test_without_git_the_working_tree_is_the_baseline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    schemas, changed = tmp_path / "schemas", without_voucher(all_event_schemas()[LOST])
    write_schema(schemas, LOST, all_event_schemas()[LOST])
    expected = [f"{LOST}: field 'voucher' was removed (against the working tree)"]
    assert check_contract(schemas, {LOST: changed}) == expected  # not a repository
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert check_contract(schemas, {LOST: changed}) == expected  # no git at all


def test_the_generator_refuses_an_incompatible_rewrite_under_any_flag(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert generate.main(["--out", str(tmp_path)]) == 0
    published = (tmp_path / "schemas" / f"{LOST}.json").read_text(encoding="utf-8")
    current = all_event_schemas()
    monkeypatch.setattr(generate, "all_event_schemas", lambda: {**current, LOST: without_voucher(current[LOST])})

    assert generate.main(["--out", str(tmp_path)]) == 1
    assert "BREAKING cn.medcard.cards.CardLost.v1: field 'voucher' was removed" in capsys.readouterr().err
    with pytest.raises(generate.BreakingChange):
        generate.write(tmp_path)
    with pytest.raises(SystemExit):  # the flag that used to allow it is gone
        generate.main(["--out", str(tmp_path), "--allow-breaking"])
    assert (tmp_path / "schemas" / f"{LOST}.json").read_text(encoding="utf-8") == published


def test_a_breaking_change_under_a_raised_version_is_a_new_file_beside_the_old(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert generate.main(["--out", str(tmp_path)]) == 0
    published = (tmp_path / "schemas" / f"{LOST}.json").read_text(encoding="utf-8")
    current = {t: s for t, s in all_event_schemas().items() if t != LOST}
    v2 = {**without_voucher(all_event_schemas()[LOST]), "x-event-type": LOST_V2, "x-version": 2}
    monkeypatch.setattr(generate, "all_event_schemas", lambda: {**current, LOST_V2: v2})

    assert generate.main(["--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "schemas" / f"{LOST_V2}.json").read_text(encoding="utf-8")) == v2
    assert (tmp_path / "schemas" / f"{LOST}.json").read_text(encoding="utf-8") == published
