"""The writer's jobs: a write nobody waits on (``Write``), how a batch of them runs (each in
its own savepoint, so one failing loses only itself), and how their callers are told.

Shared by the writer's thread and its transaction on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from ctm_pbx.adapters.store.db import atomic

log = logging.getLogger(__name__)
# SQLite's primary result codes of "the database cannot be written now": the writes wait
_UNWRITABLE = frozenset(
    {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_BUSY}
    | {sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_LOCKED}
)


class StoreUnavailable(Exception):
    """The database cannot be written now. ``kept``: the job's writes wait in the writer
    and are written when it can be (its ``on_lost``/``on_error`` is called if they never
    are); else they are not kept (a ``run`` job, or past the bound)."""

    def __init__(self, cause: object, *, kept: bool) -> None:
        super().__init__(f"the database cannot be written: {cause}")
        self.kept = kept


def unwritable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be written now (rather than a bad job)."""
    if isinstance(exc, StoreUnavailable):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.Error) and code is not None and code & 0xFF in _UNWRITABLE


@dataclass
class Write:
    """A write nobody waits on the commit of: kept and written again if its commit fails."""

    fn: Callable[..., Any]
    args: tuple
    kwargs: dict = field(default_factory=dict)
    what: str = "store write"
    on_error: Callable[[BaseException], None] | None = None


class Interrupted(Exception):
    """``run_writes`` stopped: the database cannot be written; ``keep`` is what to keep."""

    def __init__(self, cause: BaseException, keep: list[Write]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.keep = keep


def run_writes(db: sqlite_utils.Database, jobs: list[Write]) -> list[Write]:
    """Jobs, in order, each in its own savepoint: one failing loses only itself (it is
    logged and told). Returns those that stood; when the database cannot be written,
    raises ``Interrupted`` with what to keep (what stood, and the rest)."""
    stood: list[Write] = []
    for i, job in enumerate(jobs):
        try:
            with atomic(db, "deferred"):
                job.fn(db, *job.args, **job.kwargs)
        except Exception as exc:
            if unwritable(exc):
                raise Interrupted(exc, stood + jobs[i:]) from exc
            log.error("%s failed: %s: %s", job.what, type(exc).__name__, exc)
            if job.on_error is not None:
                job.on_error(exc)
        else:
            stood.append(job)
    return stood


def tell_lost(jobs: list[Write], exc: BaseException) -> None:
    """Their writes did not stand and will not be written: tell them."""
    for job in jobs:
        if job.on_error is not None:
            try:
                job.on_error(exc)
            except Exception:
                log.exception("store: a lost write's callback failed")


def writes_done(jobs: list[Write]) -> Callable[[Any, BaseException | None], None]:
    """The answer to a batch of writes: when its commit failed, none of them stood (kept
    ones are written later; refused ones were told)."""

    def done(value: Any, exc: BaseException | None) -> None:
        if exc is None or isinstance(exc, StoreUnavailable):
            return
        log.error("deferred writes failed: %s: %s", type(exc).__name__, exc)
        tell_lost(jobs, exc)

    return done


def settle(fut: asyncio.Future, value: Any, exc: BaseException | None) -> None:
    """Answer ``fut`` (on its loop's thread) unless it was answered or cancelled."""
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)
