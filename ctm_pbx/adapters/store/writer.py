"""The one writer: store functions run on a single thread, off the event loop.

The thread keeps the lease index (``lease_index``) for its connection.

Group commit: the thread runs every job that is waiting, then commits once and
only then answers them, so under load many calls share one commit while each
caller still learns of its write only once it is committed.

Deferred jobs (``defer``: call-log writes nobody waits for) are gathered on the
event loop for a few milliseconds and then written together, on the loop itself
when the thread has nothing queued or running (no thread wakeup, no switch of the
GIL: most of what such a write costs), else handed to the thread as one job.
Either way jobs run in the order they were asked for. ``run_now`` runs one short
job a caller waits on, on the loop in the same way, and answers at once: its
writes join the loop's open transaction, which the deferred jobs' timer commits
(``DEFER_S`` later, with everything written meanwhile: under load many calls'
rows share one commit, the costliest part of a write). The loop never waits
there: it takes the write lock without a busy timeout (another process writing,
e.g. the CLI: the jobs go to the thread, which waits), and what fsyncs stays on
the thread: the WAL checkpoints, and the first commit after one (which starts
the WAL over and syncs its header). Work handed to the thread, and ``close``,
commit the loop's transaction first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import sqlite_utils

from ctm_pbx.adapters.store import lease_index
from ctm_pbx.adapters.store.db import atomic, open_db

log = logging.getLogger(__name__)
T = TypeVar("T")
_STOP = object()
_CHECKPOINT = object()  # asks the thread for a WAL checkpoint
MAX_GROUP = 256
DEFER_S = 0.02  # how long deferred jobs wait for company
BUSY_MS = 10_000  # the thread's busy timeout (open_db's)
CHECKPOINT_EVERY = 256  # commits between WAL checkpoints (the thread's)


class StoreWriter:
    """Owns the database connection; ``await writer.run(fn, *args)`` calls ``fn(db, *args)``."""

    def __init__(self, path: str) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._db: sqlite_utils.Database | None = None
        self._deferred: list[tuple[Callable[..., Any], tuple, str]] = []
        self._deferred_lock = threading.Lock()
        self._flush_handle: asyncio.TimerHandle | None = None
        self._in_flight = 0  # jobs queued or running on the thread (under _deferred_lock)
        self._commits = 0  # since the last checkpoint
        self._closed = False
        self._wal_restart = False  # the next commit starts the WAL over (it fsyncs)
        self._open = False  # a transaction begun on the loop, not yet committed
        self._open_lost: list[Callable[[BaseException], None]] = []  # told if it fails
        self._last_commit: float | None = None  # time.monotonic() of the last commit
        opened: Future = Future()
        self._thread = threading.Thread(
            target=self._loop, args=(path, opened), name="ctm-store", daemon=True
        )
        self._thread.start()
        opened.result()

    def _loop(self, path: str, opened: Future) -> None:
        try:
            self._db = open_db(path, check_same_thread=False)
            # checkpoints are this thread's to run (see _checkpoint)
            self._db.conn.execute("PRAGMA wal_autocheckpoint = 0")
            lease_index.attach(self._db)
        except BaseException as exc:
            opened.set_exception(exc)
            return
        opened.set_result(None)
        while True:
            job = self._jobs.get()
            if job is _STOP:
                break
            group, asked = ([], 1) if job is _CHECKPOINT else ([job], 0)
            while len(group) < MAX_GROUP:
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    self._jobs.put(_STOP)
                    break
                if nxt is _CHECKPOINT:
                    asked += 1
                else:
                    group.append(nxt)
            results = []
            if group:
                changes = self._db.conn.total_changes
                results = self._run_group(group)
                if self._db.conn.total_changes != changes:
                    self._wal_restart = False  # this commit wrote to the WAL: started it over
            checkpoint = asked or self._commits >= CHECKPOINT_EVERY
            if not checkpoint:  # idle before the answers go out: a caller resumed by its
                with self._deferred_lock:  # answer may write on the loop at once
                    self._in_flight -= len(group)
            self._deliver(results)
            if checkpoint:  # the thread stays busy (for the loop) until it is done
                self._checkpoint()
                with self._deferred_lock:
                    self._in_flight -= len(group) + asked
        self._db.conn.close()

    def _checkpoint(self) -> None:
        """Copy the WAL back into the database (on the thread: it fsyncs)."""
        assert self._db is not None
        self._commits = 0
        self._wal_restart = True
        try:
            self._db.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception as exc:  # a busy reader, say: the next one will do
            log.warning("WAL checkpoint failed: %s", exc)

    def _run_group(self, group: list) -> list:
        """Run the jobs and commit; their answers, for ``_deliver``."""
        assert self._db is not None
        conn = self._db.conn
        results = []
        try:
            self._commits += 1
            if not conn.in_transaction:
                conn.execute("BEGIN")  # a read-only group never waits for the write lock
            for fn, args, kwargs, done in group:
                try:
                    if fn is _run_deferred:  # each of its jobs has its own savepoint
                        value = fn(self._db, *args, **kwargs)
                    else:
                        with atomic(self._db, "job"):
                            value = fn(self._db, *args, **kwargs)
                except Exception as exc:
                    results.append((done, None, exc))
                else:
                    results.append((done, value, None))
            conn.commit()
            self._last_commit = time.monotonic()
        except Exception as exc:  # the group could not be committed: nothing of it stands
            log.exception("store commit failed")
            with contextlib.suppress(Exception):
                conn.rollback()
            lease_index.invalidate(self._db)
            results = [(job[3], None, exc) for job in group]
        return results

    @staticmethod
    def _deliver(results: list) -> None:
        for done, value, exc in results:
            try:
                done(value, exc)
            except Exception:  # e.g. a loop closed meanwhile: the thread must go on
                log.exception("store: a job's answer could not be delivered")

    def _submit(self, fn: Callable[..., T], args: tuple, kwargs: dict, done) -> None:
        with self._deferred_lock:
            if self._open:  # the thread gets the connection with nothing pending
                self._finish_here()
            self._flush_deferred()  # keep the order in which jobs were asked for
            self._put((fn, args, kwargs, done))

    def _put(self, job: tuple) -> None:  # with _deferred_lock held
        self._in_flight += 1
        self._jobs.put(job)

    def defer(
        self,
        fn: Callable[..., Any],
        *args: Any,
        what: str = "store write",
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Like ``submit``, from the event loop: jobs asked for within ``DEFER_S`` are
        written together, on the loop or by the thread (see the module's docstring), each
        in its own savepoint. A failure is logged, and ``on_error`` (if given) is called
        with it (on either thread) when the job's writes did not stand: it failed, or
        its group's commit did.
        """
        with self._deferred_lock:
            if self._closed:
                log.error("%s dropped: the store is closed", what)
                return
            loop = asyncio.get_running_loop()  # raises outside the loop: nothing queued
            self._deferred.append((fn, args, what, on_error))
            if self._flush_handle is None:
                self._flush_handle = loop.call_later(DEFER_S, self._write_deferred)

    def _write_deferred(self) -> None:
        """The deferred jobs' timer: write them here and commit (with what ``run_now``
        wrote meanwhile) if the thread is idle, else hand them over."""
        with self._deferred_lock:
            self._flush_handle = None
            if self._closed or not (self._deferred or self._open):
                return
            if self._open or self._begin_here():
                self._finish_here()
            else:
                self._flush_deferred()

    def _begin_here(self) -> bool:  # with _deferred_lock held
        """Begin a transaction on this thread: when the thread is idle and the write
        lock is free (False: nothing was done)."""
        if self._closed or self._in_flight or self._wal_restart or self._db is None:
            return False
        if not self._lock_here():
            return False
        # the thread is idle and stays so while the transaction is open (work for it
        # commits this first), and the write lock is ours
        self._open = True
        return True

    def _run_deferred_here(self) -> None:  # with _deferred_lock held, self._open
        jobs, self._deferred = self._deferred, []
        if jobs:
            assert self._db is not None
            _run_deferred(self._db, jobs)
            self._open_lost += [on_error for *_, on_error in jobs if on_error is not None]

    def _finish_here(self) -> None:  # with _deferred_lock held, self._open
        """Write what is deferred into the loop's transaction, and commit it."""
        self._run_deferred_here()
        self._commit_here()

    def _commit_here(self) -> None:  # with _deferred_lock held, self._open
        """Commit the loop's transaction; if that fails, tell whose writes were lost."""
        assert self._db is not None
        lost, self._open_lost, self._open = self._open_lost, [], False
        conn = self._db.conn
        self._commits += 1
        try:
            conn.commit()
            self._last_commit = time.monotonic()
        except Exception as exc:  # nothing of it stands
            log.exception("store commit failed")
            with contextlib.suppress(Exception):
                conn.rollback()
            lease_index.invalidate(self._db)
            for on_lost in lost:
                try:
                    on_lost(exc)
                except Exception:
                    log.exception("store: a lost write's callback failed")
        if self._commits >= CHECKPOINT_EVERY:
            self._put(_CHECKPOINT)

    def _lock_here(self) -> bool:
        """Take the database's write lock without waiting (False: another process has it)."""
        assert self._db is not None
        conn = self._db.conn
        try:
            conn.execute("PRAGMA busy_timeout = 0")
            try:
                conn.execute("BEGIN IMMEDIATE")
            finally:
                conn.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
        except sqlite3.Error as exc:
            if not isinstance(exc, sqlite3.OperationalError):  # locked: the usual case
                log.warning("store: writing on the loop failed (%s): on the thread", exc)
            if conn.in_transaction:
                conn.rollback()
            return False
        return True

    def _flush_deferred(self) -> None:  # with _deferred_lock held
        # the timer, if any, stays: it belongs to the loop, and finds nothing to do
        if self._deferred:
            jobs, self._deferred = self._deferred, []
            self._put((_run_deferred, (jobs,), {}, _deferred_done(jobs)))

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()

        def done(value: Any, exc: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, fut, value, exc)

        self._submit(fn, args, kwargs, done)
        return await fut

    async def run_now(
        self,
        fn: Callable[..., T],
        *args: Any,
        on_lost: Callable[[BaseException], None] | None = None,
        **kwargs: Any,
    ) -> T:
        """Like ``run``, but on the loop itself when the thread is idle and the write lock
        free: no thread wakeup, no switch of the GIL, no commit to wait for. For short
        writes a caller waits on (AGI mode's call row). The job runs after the deferred
        jobs asked for before it, in its own savepoint (its exception undoes only its
        writes), and answers before the commit (``DEFER_S`` later at most): if that
        commit fails, ``on_lost(exc)`` is called. Else, when the thread is busy or
        another process holds the lock, on the thread, committed before the answer.
        """
        loop = asyncio.get_running_loop()
        with self._deferred_lock:
            here = self._open or self._begin_here()
            if here:
                assert self._db is not None
                self._run_deferred_here()  # the jobs asked for earlier go first
                if self._flush_handle is None:
                    self._flush_handle = loop.call_later(DEFER_S, self._write_deferred)
                try:
                    with atomic(self._db, "job"):
                        value = fn(self._db, *args, **kwargs)
                except Exception as exc:
                    error: Exception | None = exc
                else:
                    error = None
                    if on_lost is not None:
                        self._open_lost.append(on_lost)
        if not here:
            return await self.run(fn, *args, **kwargs)
        if error is not None:
            raise error
        return value

    def submit(self, fn: Callable[..., Any], *args: Any, what: str = "store write") -> None:
        """Queue ``fn(db, *args)`` without waiting; a failure is logged.

        Jobs run in the order they are queued, so a job may rely on an earlier one.
        """

        self._submit(fn, args, {}, _log_failure(what))

    def run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """The same from synchronous code (startup, tests)."""
        fut: Future = Future()

        def done(value: Any, exc: BaseException | None) -> None:
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(value)

        self._submit(fn, args, kwargs, done)
        return fut.result()

    def health(self) -> dict:
        """For ``/healthz``: whether the writer runs, its last commit's age, its backlog."""
        last = self._last_commit
        return {
            "running": self._thread.is_alive() and not self._closed,
            "last_commit_age_s": None if last is None else round(time.monotonic() - last, 3),
            "backlog": self._in_flight + len(self._deferred),
        }

    def close(self) -> None:
        with self._deferred_lock:
            if self._open:
                self._finish_here()
            self._flush_deferred()
            self._closed = True
        self._jobs.put(_STOP)
        self._thread.join(10)


def _settle(fut: asyncio.Future, value: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)


def _log_failure(what: str) -> Callable[[Any, BaseException | None], None]:
    def done(value: Any, exc: BaseException | None) -> None:
        if exc is not None:
            log.error("%s failed: %s: %s", what, type(exc).__name__, exc)

    return done


def _run_deferred(db: sqlite_utils.Database, jobs: list) -> None:
    """Deferred jobs, in order, each in its own savepoint: one failing loses only itself."""
    for fn, args, what, on_error in jobs:
        try:
            with atomic(db, "deferred"):
                fn(db, *args)
        except Exception as exc:
            log.error("%s failed: %s: %s", what, type(exc).__name__, exc)
            if on_error is not None:
                on_error(exc)


def _deferred_done(jobs: list) -> Callable[[Any, BaseException | None], None]:
    """The answer to a batch of deferred jobs: when its commit failed, none of them stood."""

    def done(value: Any, exc: BaseException | None) -> None:
        if exc is None:
            return
        log.error("deferred writes failed: %s: %s", type(exc).__name__, exc)
        for _fn, _args, _what, on_error in jobs:
            if on_error is not None:
                on_error(exc)

    return done
