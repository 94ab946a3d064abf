"""``medcard bench`` end to end at a tiny size against the real servers: every row is
there with a numeric figure, baseline and ratio, and the JSON says on what machine.
No assertion on any timing: a benchmark prints figures, it does not fail on them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from medcard.cli import app

pytestmark = pytest.mark.infra
SIZE = 200


def test_bench_prints_every_row_with_its_baseline_and_writes_the_json(infra: Any, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # service state (pids, logs) under tmp_path/.state
    report = tmp_path / "bench.json"
    result = CliRunner().invoke(app, [
        "bench", "--kafka", infra.kafka_bootstrap, "--mongo", infra.mongo_url, "--size", str(SIZE),
        "--reports", "10", "--pos-cards", "10", "--duration", "2", "--concurrency", "4", "--port-base", "8420",
        "--json", str(report)])
    assert result.exit_code == 0, result.output
    assert "loss-to-block latency p99" in result.output and "baseline" in result.output

    data = json.loads(report.read_text())
    rows = {r["key"]: r for r in data["rows"]}
    assert set(rows) == {"loss_to_block_p50", "loss_to_block_p99", "pos_rps", "pos_p99", "relay_rate",
                         f"projection_rate@{SIZE}", f"month_end_rate@{SIZE}"}
    for key, row in rows.items():
        assert "error" not in row["detail"], (key, row["detail"])
        for field in ("value", "baseline", "ratio"):
            assert isinstance(row[field], int | float), (key, field, row[field])
        assert isinstance(row["met"], bool) and row["goal"] and row["figure"] and row["unit"]
    loss = rows["loss_to_block_p99"]["detail"]
    assert loss["reports"] == loss["refused_41"] == 10  # every lost card was refused "41" at the POS
    assert loss["answered_blocked"] + loss["answered_pending"] == 10
    assert loss["approved_after_blocked"] == 0  # the promise of a "blocked" answer
    assert rows["pos_rps"]["detail"]["pos"]["statuses"].keys() == {"200"}
    assert rows[f"month_end_rate@{SIZE}"]["detail"]["bank"]["accounts"] == SIZE
    machine = data["machine"]
    assert machine["cores"] >= 1 and machine["ram_gib"] and "cpu_model" in machine
    assert set(data["services_peak_memory_mb"]["cardholders"]) == {"identity", "cards", "bank", "notifications"}
