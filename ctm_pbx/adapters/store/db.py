"""Opening the database: WAL, foreign keys, a busy timeout; read-only for readers.

The file holds callers' numbers and visitors' addresses: it is created 0600 (its
-wal and -shm files take its mode), and only by the commands that exist to
create it (``create_database``). Every failure is a ``StoreError`` whose message
names the file and says what is wrong in words an admin can act on.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlite_utils

from ctm_pbx.adapters.store import lease_index

FILE_MODE = 0o600  # the database; SQLite gives its -wal and -shm files the same
DIR_MODE = 0o700  # a folder created for it
COMPANIONS = ("", "-wal", "-shm")


class StoreError(Exception):
    """A store operation refused: the message is meant for the admin."""


class MissingDatabase(StoreError):
    """No database file where the config says it is."""


def create_database(path: str | Path) -> list[str]:
    """Create an empty database file (0600) and its folder if missing; say what was made.

    Only ``db migrate`` and ``run`` create the database: for every other command
    a missing file is an error (a typo in ``database.path`` must not start a new,
    empty inventory).
    """
    if str(path) == ":memory:":
        return []
    file = Path(path)
    made = []
    try:
        missing = [p for p in reversed(file.parents) if not p.exists()]
        for folder in missing:
            folder.mkdir(mode=DIR_MODE)
            made.append(f"created folder {folder}")
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    except FileExistsError:
        return made
    except OSError as exc:
        raise StoreError(f"cannot create database {file}: {_os_reason(exc)}") from None
    os.close(fd)
    made.append(f"created database {file} (mode {FILE_MODE:04o})")
    return made


def open_db(
    path: str | Path, *, check_same_thread: bool = True, create: bool = True
) -> sqlite_utils.Database:
    """Open the database at ``path`` for writing, in WAL mode.

    ``create=False`` (the CLI's commands that change the inventory) refuses a
    missing file. ``":memory:"`` gives an in-memory database (tests).
    """
    if str(path) == ":memory:":
        conn = sqlite3.connect(":memory:", check_same_thread=check_same_thread)
        return _configure(sqlite_utils.Database(conn), wal=False)
    file = Path(path)
    if create:
        create_database(file)
    _check_file(file)
    _check_writable(file)
    try:
        conn = sqlite3.connect(
            _uri(file, "rw"), uri=True, check_same_thread=check_same_thread, timeout=10
        )
        return _configure(sqlite_utils.Database(conn), wal=True)
    except sqlite3.Error as exc:
        raise StoreError(describe(exc, file)) from None


def open_readonly(path: str | Path) -> sqlite_utils.Database:
    """Open the database at ``path`` so that nothing can write to it (``mode=ro``).

    On a read-only mount SQLite cannot create the -shm file a WAL database
    needs; when no -wal file holds unmerged pages the file cannot change there,
    so it is opened ``immutable``. Errors: ``MissingDatabase``, ``StoreError``.
    """
    file = Path(path)
    _check_file(file)
    wal = Path(f"{file}-wal")
    params = "ro"
    if _on_readonly_fs(file) and (not wal.exists() or wal.stat().st_size == 0):
        params = "ro&immutable=1"
    try:
        conn = sqlite3.connect(_uri(file, params), uri=True, timeout=10)
        conn.execute("PRAGMA query_only = ON")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        reason = describe(exc, file)
        if _on_readonly_fs(file):
            reason += (
                " (it is on a read-only file system and its -wal file has changes"
                " not yet merged: read it where it can be written)"
            )
        raise StoreError(reason) from None
    return sqlite_utils.Database(conn)


def restrict_permissions(path: str | Path) -> list[str]:
    """Take away other users' access to the database and its -wal/-shm; say what changed.

    Databases created before ctm-pbx created them 0600 were world-readable
    (0644 under the usual umask). The group's access is left as it is.
    """
    changed = []
    for suffix in COMPANIONS:
        file = Path(f"{path}{suffix}")
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
            if mode & 0o007:
                file.chmod(mode & ~0o007)
                changed.append(f"{file}: mode {mode:04o} -> {mode & ~0o007:04o}")
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StoreError(f"cannot restrict access to {file}: {_os_reason(exc)}") from None
    return changed


_REASONS = {
    "SQLITE_FULL": "the disk is full",
    "SQLITE_READONLY": "it cannot be written here (file permissions, an immutable file"
    " or a read-only mount)",
    "SQLITE_NOTADB": "it is not a SQLite database (is database.path right?)",
    "SQLITE_CANTOPEN": "it cannot be opened",
    "SQLITE_BUSY": "another process holds a lock on it; try again",
    "SQLITE_LOCKED": "another process holds a lock on it; try again",
    "SQLITE_CORRUPT": "the file is damaged",
    "SQLITE_IOERR": "the system reported an I/O error",
    "SQLITE_PERM": "access is denied",
}


def describe(exc: sqlite3.Error, path: str | Path) -> str:
    """One line for an admin: which database, and what is wrong with it."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    primary = "_".join(name.split("_")[:2])
    reason = _REASONS.get(primary, str(exc))
    return f"database {path}: {reason}"


def _configure(db: sqlite_utils.Database, *, wal: bool) -> sqlite_utils.Database:
    if wal:
        db.enable_wal()
    db.conn.execute("PRAGMA foreign_keys = ON")
    db.conn.execute("PRAGMA synchronous = NORMAL")
    return db


def _uri(file: Path, mode: str) -> str:
    return f"file:{quote(str(file.absolute()))}?mode={mode}"


def _check_file(file: Path) -> None:
    try:
        st = file.stat()
    except FileNotFoundError:
        raise MissingDatabase(f"no database at {file}") from None
    except OSError as exc:
        raise StoreError(f"database {file}: {_os_reason(exc)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise StoreError(f"database {file}: it is a folder, not a database file")


def _check_writable(file: Path) -> None:
    """Say why the file cannot be written before SQLite quietly opens it read-only."""
    try:
        os.close(os.open(file, os.O_RDWR))
    except OSError as exc:
        raise StoreError(f"database {file} cannot be written: {_os_reason(exc)}") from None
    folder = file.absolute().parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(
            f"database {file} cannot be written: its folder {folder} does not let"
            " this user create the database's -wal and -shm files"
        )


def _on_readonly_fs(file: Path) -> bool:
    try:
        return bool(os.statvfs(file).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.EROFS:
        return "it is on a read-only file system"
    if exc.errno == errno.EPERM:
        return "the system does not permit it (an immutable file? see lsattr)"
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    if exc.errno == errno.ENOTDIR:
        return "a part of its path is a file, not a folder"
    return (exc.strerror or str(exc)).lower()


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


def one_row(db: sqlite_utils.Database, sql: str, args: tuple) -> dict[str, Any] | None:
    """The first row of a query as a dict (column -> value), or None."""
    cur = db.conn.execute(sql, args)
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cur.description], row, strict=True))
