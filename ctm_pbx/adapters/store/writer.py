"""The one writer: every write to the database goes through here, in order.

Two entry points: ``run`` (the caller waits for the answer) and ``defer`` (nobody
waits). Jobs run on the writer's thread, or, when it is idle and the job is short
(``on_loop``), in a transaction on the event loop itself (``LoopTransaction``),
committed together a few milliseconds later. When the database cannot be written,
writes nobody waits on wait in memory (bounded) and are written when it can be.
ARCHITECTURE.md ("The store writer") says how and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlite_utils

from ctm_pbx.adapters.store import lease_index, schema
from ctm_pbx.adapters.store.db import atomic, open_db
from ctm_pbx.adapters.store.loop_transaction import LoopTransaction
from ctm_pbx.adapters.store.write_jobs import (
    Interrupted,
    StoreUnavailable,
    Write,
    run_writes,
    settle,
    tell_lost,
    unwritable,
    writes_done,
)

__all__ = ["StoreUnavailable", "StoreWriter", "unwritable"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_STOP = object()
_CHECKPOINT: tuple = (object(),)  # asks the thread for a WAL checkpoint
MAX_GROUP = 256
DEFER_S = 0.02  # how long deferred jobs wait for company
COMMIT_TURNS = 3  # turns of the loop an ``on_loop`` ``run`` waits for company (no timer)
BUSY_MS = 10_000  # the thread's busy timeout (open_db's)
CHECKPOINT_EVERY = 256  # commits between WAL checkpoints (the thread's)
MAX_BACKLOG = 20_000  # writes kept in memory while the database cannot be written
RETRY_FIRST_S = 0.5  # the first pause before writing them again; it doubles
RETRY_MAX_S = 10.0  # up to this (so they are written at most this long after space returns)


class StoreWriter:
    """Owns the database connection; ``await writer.run(fn, *args)`` calls ``fn(db, *args)``."""

    def __init__(self, path: str, *, max_backlog: int = MAX_BACKLOG) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._db: sqlite_utils.Database | None = None
        self._deferred: list[Write] = []
        self._deferred_lock = threading.RLock()
        self._flush_handle: asyncio.TimerHandle | None = None
        self._in_flight = 0  # jobs queued or running on the thread (under _deferred_lock)
        self._commits = 0  # since the last checkpoint
        self._closed = False
        self._wal_restart = False  # the next commit starts the WAL over (it fsyncs)
        # the loop's open transaction (under _deferred_lock): while there is one, it
        # holds the write lock and the thread is handed nothing (``_put``)
        self._here: LoopTransaction | None = None
        self._commit_handle: asyncio.Handle | None = None
        self._no_wait = False  # the connection's busy timeout is 0 (the loop's, see _begin_here)
        # while the database cannot be written (the thread's, set under _deferred_lock)
        self.max_backlog = max_backlog
        self._backlog: list[Write] = []  # the writes that wait, in order
        self._unwritable_since: datetime | None = None
        self._write_error: str | None = None
        self._refused = 0  # writes dropped past the bound (since the start)
        self._backoff = RETRY_FIRST_S
        self._retry_at = 0.0  # time.monotonic() of the next try
        self._last_commit: float | None = None  # time.monotonic() of the last commit
        self._data_version = 0  # PRAGMA data_version: it changes when another process commits
        # each successful commit's seconds, on the thread that ran it (the daemon's metrics)
        self.on_commit: Callable[[float], None] | None = None
        opened: Future = Future()
        self._thread = threading.Thread(
            target=self._loop, args=(path, opened), name="ctm-store", daemon=True
        )
        self._thread.start()
        opened.result()

    def _loop(self, path: str, opened: Future) -> None:
        try:
            self._db = open_db(path, check_same_thread=False)
            schema.refuse_newer(self._db, path)  # the daemon's path to the database
            # checkpoints are this thread's to run (see _checkpoint)
            self._db.conn.execute("PRAGMA wal_autocheckpoint = 0")
            lease_index.attach(self._db)
            self._data_version = self._db.conn.execute("PRAGMA data_version").fetchone()[0]
        except BaseException as exc:
            if self._db is not None:
                self._db.conn.close()
            opened.set_exception(exc)
            return
        opened.set_result(None)
        while True:
            try:
                job = self._jobs.get(timeout=self._retry_wait())
            except queue.Empty:  # time to write what waits again
                self._wait_for_locks()
                self._retry()
                continue
            if job is _STOP:
                break
            self._wait_for_locks()
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
            if self._unwritable_since is not None and time.monotonic() >= self._retry_at:
                self._retry()  # what waits goes first: the order of writes is kept
            results = []
            if group and self._unwritable_since is not None:
                results = self._while_unwritable(group)
            elif group:
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
                if self._unwritable_since is None:
                    self._checkpoint()
                with self._deferred_lock:
                    self._in_flight -= len(group) + asked
        self._wait_for_locks()
        if self._backlog:
            self._retry()
        if self._backlog:  # still not writable: these never will be
            lost = StoreUnavailable(self._write_error, kept=False)
            log.error("store closed: %d waiting writes lost (%s)", len(self._backlog), lost)
            tell_lost(self._backlog, lost)
        self._db.conn.close()

    def _wait_for_locks(self) -> None:
        """The thread's busy timeout back, if the loop took it away (``_begin_here``)."""
        if self._no_wait:
            assert self._db is not None
            self._db.conn.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
            self._no_wait = False

    def _committed(self, began: float) -> None:
        self._last_commit = now = time.monotonic()
        if self.on_commit is not None:
            try:
                self.on_commit(now - began)
            except Exception:  # a metric must never fail a commit that stood
                log.exception("store: the commit hook failed")

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
        results: list[tuple[Any, Any, BaseException | None]] = []
        ran: list[tuple[Any, BaseException | None, bool]] = []  # value, error, wrote
        try:
            self._commits += 1
            if not conn.in_transaction:
                self._notice_other_writers()  # before BEGIN: it must not start a read
                conn.execute("BEGIN")  # a read-only group never waits for the write lock
            for fn, args, kwargs, done, _keep in group:
                before = conn.total_changes
                try:
                    if fn is run_writes:  # each of its jobs has its own savepoint
                        value = fn(self._db, *args, **kwargs)
                    else:
                        with atomic(self._db, "job"):
                            value = fn(self._db, *args, **kwargs)
                except Interrupted as exc:
                    ran.append((exc.keep, None, True))
                    raise exc.cause from None
                except Exception as exc:
                    if unwritable(exc):
                        ran.append((None, None, True))
                        raise
                    results.append((done, None, exc))
                    ran.append((None, exc, False))
                else:
                    results.append((done, value, None))
                    ran.append((value, None, conn.total_changes != before))
            began = time.monotonic()
            conn.commit()
            self._committed(began)
        except Exception as exc:  # the group could not be committed: nothing of it stands
            with contextlib.suppress(Exception):
                conn.rollback()
            lease_index.invalidate(self._db)
            if unwritable(exc):
                return self._commit_failed(exc, group, ran)
            log.exception("store commit failed")
            results = [(job[3], None, exc) for job in group]
        return results

    # -- while the database cannot be written (the thread's) ---------------------------

    def _commit_failed(self, exc: BaseException, group: list, ran: list) -> list:
        """The group's commit failed for want of a writable database: keep its writes,
        answer its reads (they stand), and take the jobs it did not reach as in
        ``_while_unwritable``."""
        self._enter_outage(exc)
        results = []
        for (fn, _args, _kwargs, done, keep), (value, error, wrote) in zip(
            group, ran, strict=False
        ):
            if error is not None:  # it failed by itself: nothing of it to keep
                results.append((done, None, error))
            elif keep is not None:  # a batch keeps what stood of it (all, if interrupted)
                results.append(self._keep(done, value if fn is run_writes else keep))
            elif not wrote:  # a read: its answer stands
                results.append((done, value, None))
            else:
                results.append((done, None, StoreUnavailable(exc, kept=False)))
        return results + self._while_unwritable(group[len(ran) :])

    def _while_unwritable(self, group: list) -> list:
        """Writes nobody waits on are kept for later; others run as reads, in a
        transaction that is rolled back (a job that writes gets ``StoreUnavailable``)."""
        results = []
        for fn, args, kwargs, done, keep in group:
            if keep is not None:
                results.append(self._keep(done, keep))
            else:
                results.append((done, *self._read(fn, args, kwargs)))
        return results

    def _read(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> tuple:
        assert self._db is not None
        conn = self._db.conn
        try:
            conn.execute("BEGIN")
            before = conn.total_changes
            value = fn(self._db, *args, **kwargs)
            wrote = conn.total_changes != before
        except Exception as exc:
            with contextlib.suppress(Exception):
                conn.rollback()
            lease_index.invalidate(self._db)
            return None, StoreUnavailable(exc, kept=False) if unwritable(exc) else exc
        conn.rollback()
        if wrote:  # undone: it cannot be committed now
            lease_index.invalidate(self._db)
            return None, StoreUnavailable(self._write_error, kept=False)
        return value, None

    def _keep(self, done: Callable, writes: list[Write]) -> tuple:
        """Keep ``writes`` for later, unless that would pass ``max_backlog``: then they
        are refused (their ``on_error`` called). New writes are refused rather than old
        ones dropped: the waiting writes of a call start with its row, which every later
        write of the call needs, and the ids they were given stay theirs."""
        if len(self._backlog) + len(writes) > self.max_backlog:
            if self._refused % 1000 == 0:
                log.error(
                    "store: %d writes wait already: refusing more (%d refused so far)",
                    len(self._backlog),
                    self._refused + len(writes),
                )
            self._refused += len(writes)
            exc = StoreUnavailable(f"{self._write_error} (too many writes waiting)", kept=False)
            tell_lost(writes, exc)
            return done, None, exc
        self._backlog += writes
        return done, None, StoreUnavailable(self._write_error, kept=True)

    def _enter_outage(self, exc: BaseException) -> None:
        with self._deferred_lock:
            self._write_error = f"{type(exc).__name__}: {exc}"
            if self._unwritable_since is not None:
                return
            self._unwritable_since = datetime.now(UTC)
            self._backoff = RETRY_FIRST_S
            self._retry_at = time.monotonic() + self._backoff
        log.error(
            "store: the database cannot be written (%s): writes wait in memory (up to %d)"
            " and are written when it can be",
            self._write_error,
            self.max_backlog,
        )

    def _retry_wait(self) -> float | None:
        if self._unwritable_since is None:
            return None
        return max(0.0, self._retry_at - time.monotonic())

    def _retry(self) -> None:
        """Write what waits, in order, in one transaction; on failure wait longer."""
        assert self._db is not None
        conn = self._db.conn
        waiting = self._backlog
        try:
            self._commits += 1
            if not conn.in_transaction:
                conn.execute("BEGIN IMMEDIATE")
            stood = run_writes(self._db, waiting)
            conn.commit()
        except Exception as exc:
            with contextlib.suppress(Exception):
                conn.rollback()
            lease_index.invalidate(self._db)
            cause = exc.cause if isinstance(exc, Interrupted) else exc
            if unwritable(cause):
                with self._deferred_lock:
                    self._write_error = f"{type(cause).__name__}: {cause}"
                    self._backoff = min(self._backoff * 2, RETRY_MAX_S)
                    self._retry_at = time.monotonic() + self._backoff
                log.warning(
                    "store: still not writable (%s): %d writes wait",
                    self._write_error,
                    len(waiting),
                )
                return
            log.exception("store: the waiting writes could not be committed: lost")
            tell_lost(waiting, cause)
            stood = []
        self._backlog = []
        self._wal_restart = False
        with self._deferred_lock:
            since, self._unwritable_since = self._unwritable_since, None
            self._write_error = None
        log.warning(
            "store: the database is writable again: %d writes that waited since %s written",
            len(stood),
            since.isoformat(timespec="seconds") if since else "?",
        )

    @property
    def writable(self) -> bool:
        """False while the database cannot be written (see ``health``)."""
        return self._unwritable_since is None

    def health(self) -> dict:
        """For ``/healthz``: whether the writer runs and can write, its last commit's age,
        its backlog and, while the database cannot be written, since when, why and how
        many writes wait in memory (and how many past the bound were refused)."""
        last = self._last_commit
        with self._deferred_lock:
            since = self._unwritable_since
            return {
                "running": self._thread.is_alive() and not self._closed,
                "writable": since is None,
                "last_commit_age_s": None if last is None else round(time.monotonic() - last, 3),
                "backlog": self._in_flight + len(self._deferred),
                "unwritable_since": since.isoformat(timespec="seconds") if since else None,
                "write_error": self._write_error,
                "writes_waiting": len(self._backlog),
                "writes_refused": self._refused,
            }

    @staticmethod
    def _deliver(results: list) -> None:
        for done, value, exc in results:
            try:
                done(value, exc)
            except Exception:  # e.g. a loop closed meanwhile: the thread must go on
                log.exception("store: a job's answer could not be delivered")

    def _submit(
        self,
        fn: Callable[..., T],
        args: tuple,
        kwargs: dict,
        done,  # noqa: ANN001 - called with (value, exception)
        keep: list[Write] | None = None,
    ) -> None:
        with self._deferred_lock:
            self._finish_here()  # the thread gets the connection with nothing pending
            self._flush_deferred()  # keep the order in which jobs were asked for
            self._put((fn, args, kwargs, done, keep))

    def _put(self, job: tuple) -> None:  # with _deferred_lock held
        if self._here is not None:  # the loop holds the write lock: never both
            raise RuntimeError("store: work for the thread while the loop's transaction is open")
        self._in_flight += 1
        self._jobs.put(job)

    # -- the entry points ---------------------------------------------------------------

    async def run(
        self,
        fn: Callable[..., T],
        *args: Any,
        on_loop: bool = False,
        on_lost: Callable[[BaseException], None] | None = None,
        **kwargs: Any,
    ) -> T:
        """``fn(db, *args)``, answered once its writes are committed. While the database
        cannot be written it still runs if it only reads; if it writes, its writes are
        undone and ``StoreUnavailable`` raised.

        ``on_loop``: a short job, run on the loop itself when the thread is idle and the
        write lock free (no thread wake-up, no GIL switch at each statement), after the
        deferred jobs asked for before it, in its own savepoint of the loop's transaction
        (its exception undoes only its writes, and is raised); that transaction is
        committed ``COMMIT_TURNS`` turns of the loop later with every job run meanwhile.
        Else it goes to the thread. With ``on_lost`` as well, it is answered as soon as
        it has run, before the commit (for a call's row, which nothing may delay): if
        that commit fails, ``on_lost(exc)`` is called, and while the database cannot be
        written its writes wait to be run (again) when it can be (``StoreUnavailable``
        with ``kept``); the job must then give the same ids when run again.
        """
        if on_lost is not None:
            if not on_loop:
                raise TypeError("on_lost is for on_loop jobs")
            return await self._run_early(fn, args, kwargs, on_lost)
        if on_loop:
            return await self._run_on_loop(fn, args, kwargs)
        return await self._run(fn, args, kwargs, None)

    def defer(
        self,
        fn: Callable[..., Any],
        *args: Any,
        what: str = "store write",
        on_error: Callable[[BaseException], None] | None = None,
        on_loop: bool = True,
    ) -> None:
        """``fn(db, *args)`` without waiting, after every job asked for before it. From
        the event loop (``on_loop``), jobs asked for within ``DEFER_S`` are written
        together, on the loop or by the thread, each in its own savepoint; without
        ``on_loop`` (a longer write, or from another thread) it goes to the thread. A
        failure is logged, and ``on_error`` (if given) is called with it (on either
        thread) when the job's writes did not stand: it failed, or its group's commit
        did and it could not be kept for later.
        """
        write = Write(fn, args, {}, what, on_error)
        if not on_loop:
            self._submit(run_writes, ([write],), {}, writes_done([write]), [write])
            return
        with self._deferred_lock:
            if self._closed:
                log.error("%s dropped: the store is closed", what)
                return
            loop = asyncio.get_running_loop()  # raises outside the loop: nothing queued
            self._deferred.append(write)
            if self._flush_handle is None:
                self._flush_handle = loop.call_later(DEFER_S, self._write_deferred)

    def run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``run`` from code that is not on the event loop (startup, the CLI's tests)."""
        fut: Future = Future()

        def done(value: Any, exc: BaseException | None) -> None:
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(value)

        self._submit(fn, args, kwargs, done)
        return fut.result()

    # -- on the thread ------------------------------------------------------------------

    async def _run(
        self, fn: Callable[..., T], args: tuple, kwargs: dict, keep: list[Write] | None
    ) -> T:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()

        def done(value: Any, exc: BaseException | None) -> None:
            loop.call_soon_threadsafe(settle, fut, value, exc)

        self._submit(fn, args, kwargs, done, keep)
        return await fut

    # -- on the loop (with _deferred_lock held, unless said otherwise) -------------------

    def _open_here(self) -> LoopTransaction | None:
        """The loop's transaction, with the deferred jobs asked for so far written into
        it: the open one, or a new one when the thread is idle and the write lock free
        (None: the job goes to the thread)."""
        tx = self._here or self._begin_here()
        if tx is None or not self._write_deferred_into(tx):
            return None
        return tx

    def _begin_here(self) -> LoopTransaction | None:
        """Begin the loop's transaction: when the thread is idle and the write lock is
        free (None: nothing was done)."""
        if self._closed or self._in_flight or self._wal_restart or self._db is None:
            return None
        if self._unwritable_since is not None:  # the thread keeps the writes meanwhile
            return None
        # the thread (idle now) sets its timeout again before it next uses the
        # connection: two statements less for each of the loop's transactions
        if not self._no_wait:
            self._db.conn.execute("PRAGMA busy_timeout = 0")
            self._no_wait = True
        tx = LoopTransaction.begin(self._db)
        if tx is not None:
            # the thread is idle and stays so while it is open (work for it commits
            # this first), and the write lock is ours
            self._here = tx
            self._notice_other_writers()
        return tx

    def _notice_other_writers(self) -> None:
        """Another process committed since we last looked (the CLI's ``privacy forget``
        or ``db purge``, say): the lease index may hold leases it deleted, so it is
        emptied and reloads from the table."""
        assert self._db is not None
        version = self._db.conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._data_version = version
            lease_index.invalidate(self._db)

    def _write_deferred_into(self, tx: LoopTransaction) -> bool:
        """Write the deferred jobs into ``tx`` (False: the database cannot be written;
        it is undone and its writes kept)."""
        jobs, self._deferred = self._deferred, []
        try:
            tx.write(jobs)
        except Interrupted as exc:
            self._abandon_here(exc.cause, exc.keep)
            return False
        return True

    def _write_deferred(self) -> None:
        """The deferred jobs' timer: write them here and commit (with what ``run``
        wrote meanwhile) if the thread is idle, else hand them over."""
        with self._deferred_lock:
            self._flush_handle = None
            if self._closed or not (self._deferred or self._here):
                return
            if self._here or self._begin_here():
                self._finish_here()
            else:
                self._flush_deferred()

    def _finish_here(self) -> None:
        """Write what is deferred into the loop's transaction, if one is open, and
        commit it; if that fails, keep its writes for later or, when the failure is
        theirs, tell whose writes were lost."""
        tx = self._here
        if tx is None or not self._write_deferred_into(tx):
            return
        self._here = None
        self._commits += 1
        began = time.monotonic()
        exc = tx.commit()
        if exc is None:
            self._committed(began)
            tx.answer(None)
        elif unwritable(exc):
            self._keep_from_here(tx, exc, [])
        else:
            log.error("store commit failed: %s: %s", type(exc).__name__, exc)
            tell_lost(tx.writes, exc)
            tx.answer(exc)
        if self._commits >= CHECKPOINT_EVERY:
            self._put(_CHECKPOINT)

    def _abandon_here(self, exc: BaseException, more: list[Write]) -> None:
        """The loop's transaction cannot be committed now: undo it and hand its writes
        (and ``more``) to the thread to keep."""
        tx = self._here
        assert tx is not None
        self._here = None
        tx.rollback()
        self._keep_from_here(tx, exc, more)

    def _keep_from_here(self, tx: LoopTransaction, exc: BaseException, more: list[Write]) -> None:
        """``tx`` ended without a commit for want of a writable database: its waiting
        callers are told, its writes (and ``more``) go to the thread to keep."""
        writes = tx.writes + more
        self._enter_outage(exc)
        tx.answer(StoreUnavailable(exc, kept=False))
        self._put((run_writes, (writes,), {}, writes_done(writes), writes))

    def _commit_for_waiting(self, turns: int) -> None:
        """``COMMIT_TURNS`` turns of the loop after an ``on_loop`` job: commit it (and
        what else the loop's transaction holds), then answer it. Meanwhile the loop
        takes in the requests already waiting on its sockets: their jobs share the
        commit (the costliest part of a short write), without any idle wait."""
        with self._deferred_lock:
            if turns > 1 and self._here is not None:
                loop = asyncio.get_running_loop()
                self._commit_handle = loop.call_soon(self._commit_for_waiting, turns - 1)
                return
            self._commit_handle = None
            self._finish_here()

    def _flush_deferred(self) -> None:
        # the timer, if any, stays: it belongs to the loop, and finds nothing to do
        if self._deferred:
            jobs, self._deferred = self._deferred, []
            self._put((run_writes, (jobs,), {}, writes_done(jobs), jobs))

    async def _run_on_loop(self, fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
        """``run(on_loop=True)``: answered once the loop's transaction is committed."""
        loop = asyncio.get_running_loop()
        with self._deferred_lock:
            tx = self._open_here()
            if tx is not None:  # the jobs asked for earlier went first
                if self._commit_handle is None:  # even if the job fails: the lock is given back
                    self._commit_handle = loop.call_soon(self._commit_for_waiting, COMMIT_TURNS)
                try:
                    value = tx.run(fn, args, kwargs)
                except Exception as exc:
                    if unwritable(exc):
                        self._abandon_here(exc, [])
                        raise StoreUnavailable(exc, kept=False) from exc
                    raise
                fut: asyncio.Future = loop.create_future()
                tx.wait(fut, value)
        if tx is None:
            return await self._run(fn, args, kwargs, None)
        return await fut

    async def _run_early(
        self,
        fn: Callable[..., T],
        args: tuple,
        kwargs: dict,
        on_lost: Callable[[BaseException], None],
    ) -> T:
        """``run(on_loop=True, on_lost=...)``: answered before the commit (``DEFER_S``
        later at most); on the thread, committed before the answer."""
        loop = asyncio.get_running_loop()
        write = Write(fn, args, kwargs, "store write", on_lost)
        error: Exception | None = None
        with self._deferred_lock:
            tx = self._open_here()
            if tx is not None:  # the jobs asked for earlier went first
                if self._flush_handle is None:
                    self._flush_handle = loop.call_later(DEFER_S, self._write_deferred)
                try:
                    value = tx.run(fn, args, kwargs)
                except Exception as exc:
                    error = exc
                    if unwritable(exc):
                        self._abandon_here(exc, [write])
                        error = StoreUnavailable(exc, kept=True)
                else:
                    tx.writes.append(write)
        if tx is None and self._unwritable_since is not None:
            # the thread may be busy writing what waits: the caller does not wait for it
            self._submit(run_writes, ([write],), {}, writes_done([write]), [write])
            raise StoreUnavailable(self._write_error, kept=True)
        if tx is None:
            return await self._run(fn, args, kwargs, [write])
        if error is not None:
            raise error
        return value

    def close(self) -> None:
        with self._deferred_lock:
            self._finish_here()
            self._flush_deferred()
            self._closed = True
        self._jobs.put(_STOP)
        self._thread.join(10)
