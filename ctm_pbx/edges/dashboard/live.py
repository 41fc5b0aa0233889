"""The call log's live feed: calls as they start and end, pushed to open pages.

The feed reads the committed call log (a reader thread, once a second and only while
a page listens), so it shows exactly what the log shows, in both ARI and AGI mode,
and costs the call path nothing. Each page gets a bounded queue; a page that does not
keep up loses old events, never slows the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ctm_pbx.adapters.store import call_search
from ctm_pbx.adapters.store.reader import StoreReader

log = logging.getLogger(__name__)
POLL_S = 1.0
QUEUE = 100
MAX_LISTENERS = 50


def _changes(db, last_id: int, open_ids: list[int]) -> tuple[list[dict], int]:
    """Calls newer than ``last_id``, and those of ``open_ids`` that have ended."""
    top = db.execute("SELECT COALESCE(MAX(id), 0) FROM calls").fetchone()[0]
    if last_id < 0:  # first look: start from now
        return [], top
    rows = []
    if top > last_id:
        new = db.execute("SELECT id FROM calls WHERE id > ? ORDER BY id LIMIT 50", [last_id])
        ids = [r[0] for r in new.fetchall()]
        rows += call_search.calls_by_id(db, ids)
    if open_ids:
        marks = ",".join("?" for _ in open_ids)
        done = db.execute(
            f"SELECT id FROM calls WHERE id IN ({marks}) AND status != 'in_progress'", open_ids
        )
        rows += call_search.calls_by_id(db, [r[0] for r in done.fetchall()])
    return rows, max([last_id, *(r["id"] for r in rows)])


class LiveCalls:
    def __init__(self, reader: StoreReader) -> None:
        self.reader = reader
        self.listeners: set[asyncio.Queue] = set()
        self._task: asyncio.Task | None = None
        self._last_id = -1
        self._open: set[int] = set()

    def subscribe(self) -> asyncio.Queue | None:
        """A queue of call rows; None when too many pages listen already."""
        if len(self.listeners) >= MAX_LISTENERS:
            return None
        queue: asyncio.Queue = asyncio.Queue(QUEUE)
        self.listeners.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll())
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.listeners.discard(queue)

    async def _poll(self) -> None:
        self._last_id = -1
        while self.listeners:
            try:
                rows, self._last_id = await self.reader.run(
                    _changes, self._last_id, sorted(self._open)
                )
            except Exception:
                log.exception("live call feed: reading the call log failed")
                rows = []
            for row in rows:
                if row["status"] == "in_progress":
                    self._open.add(row["id"])
                else:
                    self._open.discard(row["id"])
                for queue in self.listeners:
                    if queue.full():
                        with contextlib.suppress(asyncio.QueueEmpty):
                            queue.get_nowait()
                    queue.put_nowait(row)
            await asyncio.sleep(POLL_S)

    async def close(self) -> None:
        """Stop polling and end every page's stream (a None in its queue)."""
        for queue in self.listeners:
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(None)
        self.listeners.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
