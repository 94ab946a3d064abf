"""The one patch the local stack applies to FerretDB 1.24: serialised write commands.

FerretDB v1 runs an update as "query the document, compute the new one in Go, write
the whole document back", with nothing held between the read and the write, in every
backend. Two concurrent writers to one document then lose each other's change
(20 clients x 25 ``$inc`` end at ~30 instead of 500; a guarded compare-and-set
"succeeds" for several writers at once). MongoDB guarantees single-document
atomicity and this project depends on it (embedded outbox, never overdraw), so the
write commands (insert, update, delete, findAndModify) take a lock per collection.
tests/integration/test_database_atomicity.py proves the property on the running server.

Two more changes make ``_id`` lookups use SQLite's ``_id`` index: the lookup expression
(``->'$._id'``) differed from the index's (``->"_id"``), so SQLite scanned the whole
table for every find and every UPDATE; and ``_id`` was pushed down to SQLite only when
it was the filter's only field, so a guarded write (``{_id, rev}``) also scanned. The
handler still applies the whole filter in Go afterwards, so results are unchanged.

Last, equality on an indexed field is pushed down too. Stock FerretDB 1.24 creates the
SQLite indexes a client asks for but never uses them: every query without ``_id`` reads
the whole table and filters in Go, so a lookup by ID-number digest or a scan for
pending messages costs time in proportion to the collection. When a filter has no
``_id`` but has a string or boolean value for a top-level field that leads one of the collection's
indexes, the WHERE clause now compares that field with the index's own expression, and
SQLite uses the index. The whole filter is still applied in Go afterwards. One
difference from MongoDB remains, documented in the README: a document whose indexed
field is an *array* containing the string is not found by such an equality (MongoDB's
multikey match); this project never stores arrays in indexed fields.

And one fix: an update command with many statements (a ``bulk_write``) kept every
statement's read open until the whole command ended (``defer closer.Close()`` inside the
loop over statements). A statement that matched a document holds a SQLite connection
until then, so about 100 of them exhausted the database's pool and the command waited
forever for a connection it held itself, with its collection's write lock taken: the
collection never answered again (the outbox relay clears up to 500 outboxes in one
``bulk_write``). Each statement's read is now closed as soon as that statement is done.
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
PATCH_VERSION = "collection-write-lock-2+id-index-1+field-index-2+update-close-1"
WRITE_LOCK_GO = """package handler

import (
	"fmt"
	"sync"

	"github.com/FerretDB/wire"

	"github.com/FerretDB/FerretDB/internal/bson"
)

// Medcard patch (see medcard/stack/ferretdb_patch.py): FerretDB v1 computes an updated
// document in Go and writes the whole document back with nothing held in between, so
// concurrent writers would lose each other's change. Write commands on one collection
// therefore take that collection's lock; other collections are not held up.
var (
	writeLocksMu sync.Mutex
	writeLocks   = map[string]*sync.Mutex{}
)

// lockCollection locks the collection a write command names and returns the unlock.
func lockCollection(msg *wire.OpMsg) func() {
	key := ""
	if doc, err := bson.ToDocument(msg.RawSection0()); err == nil {
		db, _ := doc.Get("$db")
		coll, _ := doc.Get(doc.Command())
		key = fmt.Sprintf("%v\\x00%v", db, coll)
	}
	writeLocksMu.Lock()
	m, ok := writeLocks[key]
	if !ok {
		m = new(sync.Mutex)
		writeLocks[key] = m
	}
	writeLocksMu.Unlock()
	m.Lock()
	return m.Unlock
}
"""
INDEX_PUSHDOWN_GO = """package sqlite

import (
	"fmt"
	"strings"

	"github.com/FerretDB/FerretDB/internal/backends/sqlite/metadata"
	"github.com/FerretDB/FerretDB/internal/handler/sjson"
	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/must"
)

// medcardIndexWhere is a medcard patch (see medcard/stack/ferretdb_patch.py): for a filter
// without a pushed-down _id, the equality on a string or boolean value of a top-level field that
// leads one of the collection's indexes, written with that index's expression so that
// SQLite uses the index. The handler applies the whole filter afterwards.
func medcardIndexWhere(meta *metadata.Collection, filter *types.Document) (string, []any) {
	if meta == nil || filter == nil || filter.Len() == 0 {
		return "", nil
	}

	for _, index := range meta.Settings.Indexes {
		if len(index.Key) == 0 {
			continue
		}

		field := index.Key[0].Field
		if field == "_id" || strings.ContainsAny(field, ".$") {
			continue
		}

		v, err := filter.Get(field)
		if err != nil {
			continue
		}

		switch v.(type) {
		case string, bool:
			where := fmt.Sprintf(` WHERE %s->%q = ?`, metadata.DefaultColumn, field)
			return where, []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}
		}
	}

	return "", nil
}
"""
QUERY_WHERE_OLD = "\tq += whereClause\n\tq += prepareOrderByClause(params.Sort)\n"
QUERY_WHERE_NEW = "\tif whereClause == \"\" {\n\t\twhereClause, args = medcardIndexWhere(meta, params.Filter)\n\t}\n\n" + QUERY_WHERE_OLD
EXPLAIN_WHERE_OLD = "\torderByClause := prepareOrderByClause(params.Sort)\n"
EXPLAIN_WHERE_NEW = ("\tif whereClause == \"\" {\n\t\twhereClause, args = medcardIndexWhere(meta, params.Filter)\n"
                     "\t\tfilterPushdown = whereClause != \"\"\n\t}\n\n" + EXPLAIN_WHERE_OLD)

LOCKED_COMMANDS = {
    "msg_insert.go": "MsgInsert",
    "msg_update.go": "MsgUpdate",
    "msg_delete.go": "MsgDelete",
    "msg_findandmodify.go": "MsgFindAndModify",
}


ID_COLUMN_OLD = 'IDColumn = DefaultColumn + "->\'$._id\'"'
ID_COLUMN_NEW = """IDColumn = DefaultColumn + `->"_id"`"""
PUSHDOWN_OLD = "\tif params.Filter.Len() == 1 {\n\t\tv, _ := params.Filter.Get(\"_id\")"
PUSHDOWN_NEW = "\tif params.Filter != nil && params.Filter.Len() >= 1 {\n\t\tv, _ := params.Filter.Get(\"_id\")"


UPDATE_DEFER_OLD = "\t\tcloser := iterator.NewMultiCloser()\n\t\tdefer closer.Close()\n"
UPDATE_DEFER_NEW = "\t\tcloser := iterator.NewMultiCloser()\n"
UPDATE_CLOSE_OLD = "\t\tresult, err := common.UpdateDocument(ctx, c, \"update\", iter, &u)\n"
UPDATE_CLOSE_NEW = UPDATE_CLOSE_OLD + "\t\tcloser.Close() // medcard patch: this statement's read ends here, not with the command\n"


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
        path.write_text(text.replace(signature, signature + "\tdefer lockCollection(msg)()\n\n", 1))
    _replace(dest / "internal/backends/sqlite/metadata/metadata.go", ID_COLUMN_OLD, ID_COLUMN_NEW, times=1)
    # Query and Explain build the same WHERE clause.
    _replace(dest / "internal/backends/sqlite/collection.go", PUSHDOWN_OLD, PUSHDOWN_NEW, times=2)
    (dest / "internal/backends/sqlite/medcard_index_where.go").write_text(INDEX_PUSHDOWN_GO)
    _replace(dest / "internal/backends/sqlite/collection.go", QUERY_WHERE_OLD, QUERY_WHERE_NEW, times=1)
    _replace(dest / "internal/backends/sqlite/collection.go", EXPLAIN_WHERE_OLD, EXPLAIN_WHERE_NEW, times=1)
    _replace(handler / "msg_update.go", UPDATE_DEFER_OLD, UPDATE_DEFER_NEW, times=1)
    _replace(handler / "msg_update.go", UPDATE_CLOSE_OLD, UPDATE_CLOSE_NEW, times=1)
    return dest


def _replace(path: Path, old: str, new: str, *, times: int) -> None:
    text = path.read_text()
    if text.count(old) != times:
        raise StackError(f"cannot patch FerretDB: expected text not found {times} time(s) in {path.name}")
    path.write_text(text.replace(old, new))
