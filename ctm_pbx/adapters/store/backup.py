"""Backups and restores of the database file.

``backup`` uses SQLite's online backup API in one step: the copy is the database as
of one read transaction, whatever the daemon writes meanwhile (in WAL mode a reader
does not block the writer, and a one-step copy never restarts). The copy is written
to a temporary file beside the target, checked, and renamed into place, mode 0600.

``restore`` puts a backup in the database's place; it refuses while any process has
the database open (``in_use``): a WAL database's every connection holds a shared
lock on its -shm file's "DMS" byte, which SQLite itself probes to learn whether it
is the first. The database it replaces is kept (``<db>.before-restore-<time>.bak``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import sqlite_utils

from ctm_pbx.adapters.store import schema
from ctm_pbx.adapters.store.db import FILE_MODE, StoreError, describe, open_readonly

DMS_BYTE = 128  # SQLite's unix VFS: (22 + SQLITE_SHM_NLOCK) * 4 + SQLITE_SHM_NLOCK


@dataclass(frozen=True)
class BackupInfo:
    path: str
    bytes: int
    version: str  # the schema: its last migration
    calls: int


def backup_name(database: str | Path, version: str, now: datetime, what: str = "") -> str:
    """A file next to the database named by the schema it had and the time, e.g.
    ``ctm.db.m015-20261203T181500Z.bak`` (``what``: ``before-restore``)."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    return f"{database}.{what + '-' if what else ''}{version}-{stamp}.bak"


def backup(database: str | Path, target: str | Path) -> BackupInfo:
    """Copy the database (consistent, online) to ``target``, which must not exist."""
    target = Path(target)
    if target.exists():
        raise StoreError(f"{target} exists: give a new file name (a backup never overwrites)")
    source = open_readonly(database)
    part = target.with_name(f".{target.name}.part")
    try:
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
            os.close(fd)
            dest = sqlite3.connect(part)
        except OSError as exc:
            raise StoreError(f"cannot write {target}: {exc.strerror or exc}") from None
        try:
            source.conn.backup(dest, pages=-1)  # one step: one read transaction
            dest.execute("PRAGMA journal_mode = DELETE")  # a single self-contained file
        except sqlite3.Error as exc:
            raise StoreError(f"backup to {target} failed: {describe(exc, target)}") from None
        finally:
            dest.close()
        _fsync(part)
        info = check(part)
        os.replace(part, target)
        _fsync(target.parent)
    finally:
        source.conn.close()
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
    return BackupInfo(str(target), info.bytes, info.version, info.calls)


def check(path: str | Path, *, newer_ok: bool = True) -> BackupInfo:
    """A database file's schema, size and calls, after SQLite's quick check;
    ``newer_ok=False`` refuses one a newer ctm-pbx migrated (``schema.refuse_newer``)."""
    try:
        conn = sqlite3.connect(f"file:{quote(str(Path(path).absolute()))}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(describe(exc, path)) from None
    db = sqlite_utils.Database(conn)
    try:
        problems = conn.execute("PRAGMA quick_check").fetchall()
        if problems != [("ok",)]:
            raise StoreError(f"{path} is damaged: {problems[0][0]}")
        if "calls" not in db.table_names():
            raise StoreError(f"{path} is not a ctm-pbx database (it has no calls table)")
        if not newer_ok:
            schema.refuse_newer(db, path)
        calls = conn.execute("SELECT count(*) FROM calls").fetchone()[0]
        version = schema.version(db)
    except sqlite3.Error as exc:
        raise StoreError(describe(exc, path)) from None
    finally:
        conn.close()
    return BackupInfo(str(path), Path(path).stat().st_size, version, calls)


@contextlib.contextmanager
def exclusive(database: str | Path) -> Iterator[None]:
    """Hold the database's DMS lock (no process can open it meanwhile); ``StoreError``
    naming why if a process has it open. This process must not have it open itself
    (POSIX locks are per process: its own would not count)."""
    shm = Path(f"{database}-shm")
    try:
        fd = os.open(shm, os.O_RDWR | os.O_CREAT, FILE_MODE)
    except OSError as exc:
        raise StoreError(f"cannot lock {database}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, DMS_BYTE, os.SEEK_SET)
        except OSError:
            raise StoreError(
                f"database {database} is in use (a ctm-pbx daemon, the dashboard or a"
                " command has it open): stop the daemon first (systemctl stop ctm-pbx)"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


def in_use(database: str | Path) -> bool:
    """Whether a process has the database open (its -shm's DMS byte is locked)."""
    if not Path(f"{database}-shm").exists():
        return False
    try:
        with exclusive(database):
            return False
    except StoreError:
        return True


def restore(database: str | Path, source: str | Path, now: datetime) -> tuple[BackupInfo, str]:
    """Put the backup ``source`` in the database's place; the replaced file's new name."""
    database = Path(database)
    info = check(source, newer_ok=False)
    if in_use(database):
        with exclusive(database):  # raises, saying so
            pass
    kept = ""
    part = database.with_name(f".{database.name}.restore.part")
    with contextlib.suppress(FileNotFoundError):
        part.unlink()
    # the copy goes through SQLite too: a backup with a -wal of its own is read whole
    copied = backup(source, part)
    try:
        if database.exists():
            old = check_version(database)
            kept = backup_name(database, old, now, "before-restore")
            backup(database, kept)
        with exclusive(database):
            with contextlib.suppress(FileNotFoundError):  # never to be replayed onto it
                Path(f"{database}-wal").unlink()
            os.replace(part, database)
            with contextlib.suppress(FileNotFoundError):
                Path(f"{database}-shm").unlink()
            _fsync(database.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
    return BackupInfo(str(database), copied.bytes, info.version, info.calls), kept


def check_version(database: str | Path) -> str:
    db = open_readonly(database)
    try:
        return schema.version(db)
    finally:
        db.conn.close()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
