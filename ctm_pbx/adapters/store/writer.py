"""The one writer: store functions run on a single thread, off the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import sqlite_utils

from ctm_pbx.adapters.store.db import open_db

log = logging.getLogger(__name__)
T = TypeVar("T")


class StoreWriter:
    """Owns the database connection; ``await writer.run(fn, *args)`` calls ``fn(db, *args)``.

    Every call runs on the same thread, in order, inside one transaction.
    """

    def __init__(self, path: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ctm-store")
        self._db: sqlite_utils.Database | None = None
        self._path = path
        self._pool.submit(self._open).result()

    def _open(self) -> None:
        self._db = open_db(self._path, check_same_thread=False)

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        assert self._db is not None
        with self._db.conn:
            return fn(self._db, *args, **kwargs)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._call, fn, args, kwargs)

    def run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """The same from synchronous code (startup, tests)."""
        return self._pool.submit(self._call, fn, args, kwargs).result()

    def close(self) -> None:
        def _close() -> None:
            if self._db is not None:
                self._db.conn.close()

        self._pool.submit(_close).result()
        self._pool.shutdown(wait=True)
