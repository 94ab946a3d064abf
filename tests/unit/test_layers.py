"""The layers hold: a domain module is pure (no database, broker, HTTP or logging library
gets imported with it), and no service imports another."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("identity", "cards", "bank", "notifications")
IO_LIBRARIES = ("pymongo", "aiokafka", "fastapi", "starlette", "httpx", "structlog", "prometheus_client", "limits",
                "uvicorn", "argon2", "jwt")
PURE = ["shared.domain", *(f"services.{s}.domain" for s in SERVICES), "services.bank.authorisation",
        "services.identity.clock", "services.notifications.compose"]


@pytest.mark.parametrize("module", PURE)
def test_a_domain_module_imports_no_library_that_does_io(module: str) -> None:
    probe = (f"import sys, {module}; "
             f"print(','.join(m for m in {IO_LIBRARIES!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "", f"{module} pulls in {loaded.stdout.strip()}"


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_imports_another(service: str) -> None:
    others = {f"services.{s}" for s in SERVICES if s != service}
    for path in (ROOT / "services" / service).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            for name in names:
                assert not any(name == o or name.startswith(o + ".") for o in others), f"{path} imports {name}"


def test_reads_with_a_limit_and_counts_go_through_the_helpers_that_keep_connections() -> None:
    """``.limit(n)`` and ``count_documents`` cost FerretDB a PostgreSQL backend per call
    (``shared.database.one_batch``): the services and the shared library use the helpers."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    offline = {root / "shared" / "database.py", root / "shared" / "rebuild.py"}
    found = [f"{path.relative_to(root)}:{n}" for folder in ("shared", "services") for path in (root / folder).rglob("*.py")
             if path not in offline
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"\.limit\((?!-)|count_documents\(", line)]
    assert found == []


def test_no_update_of_many_documents_names_them_by_id() -> None:
    """DocumentDB applies an update of many documents by scanning the whole collection
    (``_id`` ``$in`` included: 70-120 ms on 10,000 accounts): documents known by ``_id`` are
    updated one ``UpdateOne`` each, in one ``bulk_write``."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    found = [f"{path.relative_to(root)}:{n}" for folder in ("shared", "services") for path in (root / folder).rglob("*.py")
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"(UpdateMany|update_many|DeleteMany|delete_many)\(\s*\{\s*\"_id\"", line)]
    assert found == []
