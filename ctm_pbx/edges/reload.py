"""Config reload on SIGHUP (``systemctl reload ctm-pbx``), without a restart.

1. The file is read and validated off the loop. An invalid file changes nothing:
   every problem is logged (file, line, key path) and the running config stays.
2. The config's ``tracking_numbers`` are synced into the inventory (the rule of
   ``ctm-pbx numbers sync``: a sync that would release more than
   ``database.max_release_percent`` of them is refused, and so is the reload), and
   the active numbers read back.
3. Then, with no await in between, the new config and numbers are swapped into the
   call handlers, the visit desk (whose source index is rebuilt for it), the
   dashboard, the outbox's destinations and the daemon: the next call or visit
   uses them. A call in progress
   keeps the config it started with (ARI mode: its flow and row writes; AGI mode:
   its plan was made at the request).

Settings of listeners and connections (``asterisk``, ``database``, ``web``,
``dashboard``) are read at start only: when they changed, the reload says which
and keeps the running values; they take effect at the next restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import click
import sqlite_utils

from ctm_pbx.adapters.config_loader import ConfigError, load_config
from ctm_pbx.core.model import Config

if TYPE_CHECKING:
    from ctm_pbx.edges.daemon import Daemon

log = logging.getLogger(__name__)

RESTART_SECTIONS = ("asterisk", "database", "web", "dashboard")


def restart_only_changes(old: Config, new: Config) -> list[str]:
    """The sections read at start only that differ between ``old`` and ``new``."""
    return [name for name in RESTART_SECTIONS if getattr(old, name) != getattr(new, name)]


def _sync_numbers(db: sqlite_utils.Database, config: Config) -> str:
    """Sync the config's numbers into the inventory (a writer job); what it did."""
    from ctm_pbx.edges.cli import sync_config_numbers  # the CLI's rule: one place

    plan = sync_config_numbers(config, db)
    return f"{len(plan.insert)} added, {len(plan.update)} updated, {len(plan.release)} released"


class Reloader:
    """Reloads the daemon's config file; one reload at a time, and a SIGHUP that
    comes during one runs another after it (the file may have changed again)."""

    def __init__(self, daemon: Daemon, load: Callable[[str], Config] = load_config) -> None:
        self.daemon = daemon
        self.load = load
        self._task: asyncio.Task | None = None
        self._again = False

    def request(self) -> None:
        """From the signal handler: reload soon (on the loop)."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def wait(self) -> None:
        """Until the requested reloads are done (tests, shutdown)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            self._again = False
            try:
                await self.reload()
            except Exception:
                log.exception("config reload failed; the running config stays")
                self._count("failed")
            if not self._again:
                return

    def _count(self, result: str) -> None:
        metrics = getattr(self.daemon, "metrics", None)
        if metrics is not None:
            metrics.reloads.labels(result).inc()

    async def reload(self) -> bool:
        """Reload the file the running config came from; whether the new one is in force."""
        d = self.daemon
        old = d.config
        if old.path is None:
            log.error("config reload: the running config came from no file")
            self._count("invalid")
            return False
        log.info("config reload: reading %s", old.path)
        try:
            new = await asyncio.to_thread(self.load, old.path)
        except ConfigError as exc:
            log.error(
                "config reload: %s has %d problem(s); the running config stays",
                old.path,
                len(exc.errors),
            )
            for issue in exc.errors:
                log.error("config reload: %s", issue.format(exc.filename))
            self._count("invalid")
            return False
        kept = restart_only_changes(old, new)
        if kept:
            log.warning(
                "config reload: %s changed: read at start only, kept as running until a restart",
                ", ".join(kept),
            )
            new = replace(new, **{name: getattr(old, name) for name in kept})
        try:
            synced = await d.writer.run(_sync_numbers, new)
        except click.ClickException as exc:  # conflicts, or too many numbers released
            log.error("config reload: %s; the running config stays", exc.message)
            self._count("invalid")
            return False
        numbers = await d.inventory.fetch()
        # from here to the end, no await: the swap is atomic for the loop's tasks
        install(d, new, numbers)
        log.info(
            "config reloaded from %s: %d sources, %d pools, %d routes, %d tracking numbers"
            " active (config numbers: %s)",
            new.path,
            len(new.sources),
            len(new.pools),
            len(new.routes),
            len(numbers[1]),
            synced,
        )
        self._count("applied")
        return True


def install(d: Daemon, config: Config, numbers: tuple) -> None:
    """Swap ``config`` and the active ``numbers`` into every part that reads them per
    call or per request (synchronous: nothing runs in between)."""
    d.inventory.install(numbers)
    d.handler.config = config
    d.spool.config = config
    if d.agi is not None:
        d.agi.config = config
    if d.api is not None:
        d.api.config = config
        assert d.api.desk is not None
        d.api.desk.reconfigure(config)
    if d.dashboard_state is not None:
        d.dashboard_state.reconfigure(config)
    d.outbox.reconfigure(config)
    d.config = config
