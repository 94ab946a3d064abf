"""The one patch the local stack applies to FerretDB 1.24: serialised write commands.

FerretDB v1 runs an update as "query the document, compute the new one in Go, write
the whole document back", with nothing held between the read and the write, in every
backend. Two concurrent writers to one document then lose each other's change
(20 clients x 25 ``$inc`` end at ~30 instead of 500; a guarded compare-and-set
"succeeds" for several writers at once). MongoDB guarantees single-document
atomicity and this project depends on it (embedded outbox, never overdraw), so the
write commands (insert, update, delete, findAndModify) take one process-wide lock.
tests/integration/test_database_atomicity.py proves the property on the running server.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

from medcard.stack.process import StackError

MODULE = "github.com/FerretDB/FerretDB"
PATCH_VERSION = "write-lock-1"
WRITE_LOCK_GO = """package handler

import "sync"

// writeMu serialises the write commands (medcard patch, see medcard/stack/ferretdb_patch.py).
// FerretDB v1 computes an updated document in Go and writes the whole document back
// with nothing held in between, so concurrent writers would lose each other's change.
var writeMu sync.Mutex
"""
LOCKED_COMMANDS = {
    "msg_insert.go": "MsgInsert",
    "msg_update.go": "MsgUpdate",
    "msg_delete.go": "MsgDelete",
    "msg_findandmodify.go": "MsgFindAndModify",
}


def module_source(version: str, env: dict[str, str]) -> Path:
    """Download FerretDB's module through the Go module proxy; return its read-only dir."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{MODULE}@v{version}"],
        env=env, capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        raise StackError(f"go mod download {MODULE}@v{version} failed:\n{out.stdout}{out.stderr}")
    return Path(json.loads(out.stdout)["Dir"])


def patched_copy(source: Path, dest: Path) -> Path:
    """Copy the module source to ``dest`` (writable) and apply the write lock."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest)
    for root, dirs, files in os.walk(dest):
        for name in dirs + files:
            p = Path(root) / name
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    dest.chmod(dest.stat().st_mode | stat.S_IWUSR)
    handler = dest / "internal" / "handler"
    (handler / "write_lock.go").write_text(WRITE_LOCK_GO)
    for filename, func in LOCKED_COMMANDS.items():
        path = handler / filename
        text = path.read_text()
        signature = f"func (h *Handler) {func}(connCtx context.Context, msg *wire.OpMsg) (*wire.OpMsg, error) {{\n"
        if signature not in text:
            raise StackError(f"cannot patch FerretDB: {func} not found in {filename}")
        path.write_text(text.replace(signature, signature + "\twriteMu.Lock()\n\tdefer writeMu.Unlock()\n\n", 1))
    return dest
