"""Which leftovers ``medcard stack prune`` drops: pure name logic, and the two ways a
namespace still in use is found (a resumable run's progress file, a running service)."""

from __future__ import annotations

from pathlib import Path

from medcard.stack.prune import namespace_of_database, namespace_of_topic, plan, resumable_namespaces, \
    running_namespaces


def test_a_namespace_is_read_from_service_databases_and_registry_topics_only() -> None:
    assert namespace_of_database("sim7xab12cd_bank") == "sim7xab12cd"
    assert namespace_of_database("my_team_notifications") == "my_team"
    assert namespace_of_database("_bank") is None
    assert namespace_of_database("countbug") is None
    assert namespace_of_database("sim7x_ledger") is None
    assert namespace_of_database("bencha10000x2a2036_benchbase") == "bencha10000x2a2036"
    assert namespace_of_topic("sim7xab12cd.clock") == "sim7xab12cd"
    assert namespace_of_topic("a.b.cards.dlq") == "a.b"
    assert namespace_of_topic("__consumer_offsets") is None
    assert namespace_of_topic("stack-test") is None
    assert namespace_of_topic(".bank") is None
    assert namespace_of_topic("sim7x.ledger") is None


def test_the_plan_drops_every_namespace_but_the_kept_ones() -> None:
    todo = plan(databases=["old_bank", "old_cards", "medcard_bank", "admin", "live_identity", "old_cli",
                           "stray_cli"],
                topics=["old.bank", "old.bank.dlq", "medcard.cards", "gone.clock", "stack-test"],
                keep=["medcard", "live", "absent"])
    assert list(todo.drop) == ["gone", "old"]
    assert todo.drop["old"].databases == ["old_bank", "old_cards", "old_cli"]  # "stray": no namespace found
    assert todo.drop["old"].topics == ["old.bank", "old.bank.dlq"]
    assert todo.drop["gone"].databases == [] and todo.drop["gone"].topics == ["gone.clock"]
    assert todo.databases == ["old_bank", "old_cards", "old_cli"]
    assert todo.topics == ["gone.clock", "old.bank", "old.bank.dlq"]
    assert todo.kept == ["live", "medcard"]  # found and kept; "absent" was not found


def test_resumable_runs_are_found_by_their_progress_files(tmp_path: Path) -> None:
    (tmp_path / "sim-progress").mkdir()
    (tmp_path / "sim-progress" / "progress.json").write_text('{"version": 1, "namespace": "sim7xaaaaaa"}')
    (tmp_path / "long" / "progress").mkdir(parents=True)
    (tmp_path / "long" / "progress" / "progress.json").write_text('{"namespace": "sim7xbbbbbb"}')
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "progress.json").write_text("{not json")
    (tmp_path / "list").mkdir()
    (tmp_path / "list" / "progress.json").write_text("[1, 2]")
    assert resumable_namespaces(tmp_path) == {"sim7xaaaaaa", "sim7xbbbbbb"}


def test_running_services_are_found_by_their_environment(tmp_path: Path) -> None:
    for pid, environ in (("101", b"PATH=/bin\0MEDCARD_NAMESPACE=sim7xcccccc\0"), ("102", b"MEDCARD_NAMESPACE=\0"),
                         ("103", b"HOME=/root\0"), ("self", b"MEDCARD_NAMESPACE=notapid\0")):
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "environ").write_bytes(environ)
    assert running_namespaces(tmp_path) == {"sim7xcccccc"}
    assert running_namespaces(tmp_path / "absent") == set()
