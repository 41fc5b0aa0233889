"""What the call handlers read on every call, kept in memory: the active tracking
numbers and the round-robin memory of routes.

The CLI changes numbers through its own connection; ``refresh`` notices that by
SQLite's ``PRAGMA data_version`` and reloads. ARI and AGI mode share one instance,
so a round-robin route rotates across both.
"""

from __future__ import annotations

import logging

import sqlite_utils

from ctm_pbx.adapters.store.route_state import load_route_memory
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.core.model import NumberInfo
from ctm_pbx.core.routing import RouteMemory

log = logging.getLogger(__name__)


def _load_numbers(db: sqlite_utils.Database) -> tuple[int, dict[str, NumberInfo]]:
    version = db.execute("PRAGMA data_version").fetchone()[0]
    rows = db.execute(
        "SELECT number, source, pool, route FROM tracking_numbers WHERE status = 'active'"
    ).fetchall()
    return version, {r[0]: NumberInfo(*r) for r in rows}


def _data_version(db: sqlite_utils.Database) -> int:
    return db.execute("PRAGMA data_version").fetchone()[0]


class LiveInventory:
    def __init__(self, writer: StoreWriter) -> None:
        self.writer = writer
        self.numbers: dict[str, NumberInfo] = {}
        self.memory: dict[str, RouteMemory] = {}
        self._version = -1
        self.loaded = False

    async def load(self) -> None:
        self._version, self.numbers = await self.writer.run(_load_numbers)
        self.memory.clear()
        self.memory.update(await self.writer.run(load_route_memory))
        self.loaded = True

    async def fetch(self) -> tuple[int, dict[str, NumberInfo]]:
        """The active numbers now, for ``install``: a config reload reads them after
        syncing the config's numbers (on the writer's own connection, which
        ``refresh``'s ``data_version`` does not see) and installs them with the config."""
        return await self.writer.run(_load_numbers)

    def install(self, fetched: tuple[int, dict[str, NumberInfo]]) -> None:
        self._version, self.numbers = fetched

    async def refresh(self) -> None:
        """Pick up inventory changes made by the CLI (another connection)."""
        version = await self.writer.run(_data_version)
        if version != self._version:
            self._version, self.numbers = await self.writer.run(_load_numbers)
            log.info("tracking numbers reloaded: %d active", len(self.numbers))
