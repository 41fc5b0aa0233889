"""The one writer: store functions run on a single thread, off the event loop.

The thread keeps the lease index (``lease_index``) for its connection.

Group commit: the thread runs every job that is waiting, then commits once and
only then answers them, so under load many calls share one commit while each
caller still learns of its write only once it is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import sqlite_utils

from ctm_pbx.adapters.store import lease_index
from ctm_pbx.adapters.store.db import atomic, open_db

log = logging.getLogger(__name__)
T = TypeVar("T")
_STOP = object()
MAX_GROUP = 256


class StoreWriter:
    """Owns the database connection; ``await writer.run(fn, *args)`` calls ``fn(db, *args)``."""

    def __init__(self, path: str) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._db: sqlite_utils.Database | None = None
        opened: Future = Future()
        self._thread = threading.Thread(
            target=self._loop, args=(path, opened), name="ctm-store", daemon=True
        )
        self._thread.start()
        opened.result()

    def _loop(self, path: str, opened: Future) -> None:
        try:
            self._db = open_db(path, check_same_thread=False)
            lease_index.attach(self._db)
        except BaseException as exc:
            opened.set_exception(exc)
            return
        opened.set_result(None)
        while True:
            job = self._jobs.get()
            if job is _STOP:
                break
            group = [job]
            while len(group) < MAX_GROUP:
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    self._jobs.put(_STOP)
                    break
                group.append(nxt)
            self._run_group(group)
        self._db.conn.close()

    def _run_group(self, group: list) -> None:
        assert self._db is not None
        conn = self._db.conn
        results = []
        try:
            if not conn.in_transaction:
                conn.execute("BEGIN")
            for fn, args, kwargs, done in group:
                try:
                    with atomic(self._db, "job"):
                        value = fn(self._db, *args, **kwargs)
                except Exception as exc:
                    results.append((done, None, exc))
                else:
                    results.append((done, value, None))
            conn.commit()
        except Exception as exc:  # the group could not be committed: nothing of it stands
            log.exception("store commit failed")
            with contextlib.suppress(Exception):
                conn.rollback()
            lease_index.invalidate(self._db)
            results = [(job[3], None, exc) for job in group]
        for done, value, exc in results:
            done(value, exc)

    def _submit(self, fn: Callable[..., T], args: tuple, kwargs: dict, done) -> None:
        self._jobs.put((fn, args, kwargs, done))

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()

        def done(value: Any, exc: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, fut, value, exc)

        self._submit(fn, args, kwargs, done)
        return await fut

    def submit(self, fn: Callable[..., Any], *args: Any, what: str = "store write") -> None:
        """Queue ``fn(db, *args)`` without waiting; a failure is logged.

        Jobs run in the order they are queued, so a job may rely on an earlier one.
        """

        def done(value: Any, exc: BaseException | None) -> None:
            if exc is not None:
                log.error("%s failed: %s: %s", what, type(exc).__name__, exc)

        self._submit(fn, args, {}, done)

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

    def close(self) -> None:
        self._jobs.put(_STOP)
        self._thread.join(10)


def _settle(fut: asyncio.Future, value: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)
