"""Read-only queries off the event loop: a small pool of threads, each with its own
read-only connection (WAL lets them read while the one writer writes).

The dashboard's reports scan many rows; on the loop they would delay calls.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

T = TypeVar("T")


def open_read_only(path: str | Path) -> sqlite_utils.Database:
    """The database at ``path``, read only (never created)."""
    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True,
                           check_same_thread=False)  # fmt: skip
    conn.execute("PRAGMA query_only = ON")
    return sqlite_utils.Database(conn)


class StoreReader:
    """``await reader.run(fn, *args)`` calls ``fn(db, *args)`` on a reading thread."""

    def __init__(self, path: str, threads: int = 2) -> None:
        self._path = path
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="ctm-read")
        self._opened: list[sqlite_utils.Database] = []
        self._lock = threading.Lock()

    def _db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = open_read_only(self._path)
            with self._lock:
                self._opened.append(db)
        return db

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self._db(), *args))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._lock:
            for db in self._opened:
                db.conn.close()
            self._opened.clear()
