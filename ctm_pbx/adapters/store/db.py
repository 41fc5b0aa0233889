"""Opening the database: WAL, foreign keys, a busy timeout."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from ctm_pbx.adapters.store import lease_index


class StoreError(Exception):
    """A store operation refused: the message is meant for the admin."""


def open_db(path: str | Path, *, check_same_thread: bool = True) -> sqlite_utils.Database:
    """Open (creating if needed) the database at ``path`` in WAL mode.

    ``":memory:"`` gives an in-memory database (tests).
    """
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=check_same_thread, timeout=10)
    db = sqlite_utils.Database(conn)
    if str(path) != ":memory:":
        db.enable_wal()
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    return db


@contextmanager
def atomic(db: sqlite_utils.Database, name: str = "ctm") -> Iterator[None]:
    """All or nothing: a savepoint, so it nests inside the writer's group transaction.

    Outside any transaction (the CLI) releasing it commits. A rollback also
    empties the writer's lease index, which may hold what was undone.
    """
    conn = db.conn
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")
        lease_index.invalidate(db)
        raise
    conn.execute(f"RELEASE {name}")
