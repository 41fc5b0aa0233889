"""A write transaction on the event loop's own thread, begun while the writer's thread
is idle: short writes skip the thread wake-up and the GIL switches of the thread.

An object of this class exists only while it holds SQLite's write lock: ``begin``
takes the lock without waiting (or gives ``None``), and ``commit`` or ``rollback``
gives it back and ends the object (using it after that raises). The writer keeps at
most one and hands its thread nothing while it is open, so "who holds the write lock"
is whoever holds the object.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

import sqlite_utils

from ctm_pbx.adapters.store import lease_index
from ctm_pbx.adapters.store.db import atomic
from ctm_pbx.adapters.store.write_jobs import Write, run_writes, settle

log = logging.getLogger(__name__)


class TransactionEnded(RuntimeError):
    """The loop's transaction was used after its commit or rollback (a writer bug)."""


class LoopTransaction:
    """The loop's open transaction: the writes in it (kept for later if its commit
    fails) and the callers waiting for its commit."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db: sqlite_utils.Database | None = db
        self.writes: list[Write] = []  # written in it: kept if its commit fails
        self._waiting: list[tuple[asyncio.Future, Any]] = []  # answered once it ends

    @classmethod
    def begin(cls, db: sqlite_utils.Database) -> LoopTransaction | None:
        """Take the write lock without waiting (None: another process holds it).
        The connection's busy timeout must already be 0: the loop never waits."""
        conn = db.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            if not isinstance(exc, sqlite3.OperationalError):  # locked: the usual case
                log.warning("store: writing on the loop failed (%s): on the thread", exc)
            if conn.in_transaction:
                conn.rollback()
            return None
        return cls(db)

    @property
    def db(self) -> sqlite_utils.Database:
        if self._db is None:
            raise TransactionEnded("the loop's transaction has ended")
        return self._db

    def write(self, jobs: list[Write]) -> None:
        """Write ``jobs`` into it, each in its own savepoint (``Interrupted``: the
        database cannot be written; the caller rolls back and keeps what it says)."""
        if jobs:
            self.writes += run_writes(self.db, jobs)

    def run(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        """``fn(db, *args)`` in its own savepoint: its exception undoes only its writes."""
        db = self.db
        with atomic(db, "job"):
            return fn(db, *args, **kwargs)

    def wait(self, fut: asyncio.Future, value: Any) -> None:
        """Answer ``fut`` with ``value`` once committed (with the error if not)."""
        self.db  # noqa: B018 - raises once ended
        self._waiting.append((fut, value))

    def commit(self) -> BaseException | None:
        """Commit and end it: None when it stood, else the error (rolled back)."""
        db = self._end()
        try:
            db.conn.commit()
        except Exception as exc:  # nothing of it stands
            self._undo(db)
            return exc
        return None

    def rollback(self) -> None:
        """Undo it and end it."""
        self._undo(self._end())

    def answer(self, exc: BaseException | None) -> None:
        """Once it ended: answer the callers waiting on it, with their values if it was
        committed, else with ``exc`` (from any thread)."""
        if self._db is not None:
            raise RuntimeError("the loop's transaction is still open")
        waiting, self._waiting = self._waiting, []
        for fut, value in waiting:
            loop = fut.get_loop()
            try:
                here = asyncio.get_running_loop() is loop
            except RuntimeError:  # not on a loop's thread (``close``, ``run_sync``)
                here = False
            if here:
                settle(fut, value, exc)
            else:
                with contextlib.suppress(RuntimeError):  # a loop closed meanwhile
                    loop.call_soon_threadsafe(settle, fut, value, exc)

    def _end(self) -> sqlite_utils.Database:
        db = self.db
        self._db = None
        return db

    @staticmethod
    def _undo(db: sqlite_utils.Database) -> None:
        with contextlib.suppress(Exception):
            db.conn.rollback()
        lease_index.invalidate(db)
