"""Retention: blank and delete what is older than the config keeps (``core.retention``).

Every write is one short batch (``BATCH`` rows, each an index range: see schema
m018), run by ``run(fn, *args)`` and committed on its own, so that the write lock
is never held for long: in the daemon ``run`` is the single writer's
(``StoreWriter.run_sync``, from a worker thread), so that the call path's writes
go between the batches; in the CLI, ``committing(db)``. Both are ``paced``: after
each batch a pause as long, so that the writer stays idle half the time (and the
call path writes on the event loop as usual: bench/README.md). Media files are deleted
outside the batches (no lock is held meanwhile), before the row's reference:
a failure leaves a reference to a missing file, never a file nobody knows of.
``due`` counts the same rows without writing (``db purge --dry-run``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from ctm_pbx.adapters import media
from ctm_pbx.adapters.store.db import atomic
from ctm_pbx.core.clock import iso
from ctm_pbx.core.retention import Cutoffs, PurgeCounts

log = logging.getLogger(__name__)

BATCH = 50  # rows a write job touches at most (a few ms of the writer's time: bench/README.md)
PACE_SHARE = 0.5  # the share of the writer's time a purge takes at most (``paced``)
Run = Callable[..., Any]  # run(fn, *args): fn(db, *args), committed

_IDENTIFYING_VISITS = (
    "FROM visits INDEXED BY idx_visits_identifying"
    " WHERE (ip IS NOT NULL OR user_agent IS NOT NULL) AND started_at < ?"
)
_IDENTIFYING_LEASES = (
    "FROM leases INDEXED BY idx_leases_identifying WHERE client IS NOT NULL AND leased_at < ?"
)
_DUE_VISITS = "FROM visits INDEXED BY idx_visits_started WHERE started_at < ?1"
# a lease goes with its visit; one without a visit when it expired before the cutoff
_LEASE_DUE = (
    "(visit_id IN (SELECT id " + _DUE_VISITS + ") OR (visit_id IS NULL AND expires_at < ?1))"
)
# a visitor goes with their last visit, once no lease of theirs remains
_VISITORS_DUE = (
    "SELECT count(DISTINCT v.visitor_id) FROM visits AS v WHERE v.started_at < ?1"
    " AND NOT EXISTS (SELECT 1 FROM visits AS w WHERE w.visitor_id = v.visitor_id"
    " AND w.started_at >= ?1)"
    " AND NOT EXISTS (SELECT 1 FROM leases AS l WHERE l.visitor_id = v.visitor_id"
    " AND NOT "
    + _LEASE_DUE.replace("visit_id", "l.visit_id").replace("expires_at", "l.expires_at")
    + ")"
)
_MEDIA = (
    "SELECT id, started_at, recording_path, voicemail_path FROM calls INDEXED BY idx_calls_media"
    " WHERE (recording_path IS NOT NULL OR voicemail_path IS NOT NULL) AND started_at < ?"
    " AND (started_at > ? OR (started_at = ? AND id > ?)) ORDER BY started_at, id LIMIT ?"
)
_OLD_CALLS = (
    "SELECT id, started_at, recording_path, voicemail_path FROM calls"
    " INDEXED BY idx_calls_started_at WHERE started_at < ? AND status = 'completed'"
    " AND (started_at > ? OR (started_at = ? AND id > ?)) ORDER BY started_at, id LIMIT ?"
)
KINDS = ("recording", "voicemail")


def paced(run: Run, share: float = PACE_SHARE) -> Run:
    """``run``, pausing after each job so that the purge takes at most ``share`` of the
    writer's time: between two batches the writer is idle, and the call path's writes
    go on the event loop as they do when nothing else runs (``StoreWriter.run``)."""

    def run_paced(fn: Callable[..., Any], *args: Any) -> Any:
        t0 = time.monotonic()
        try:
            return run(fn, *args)
        finally:
            time.sleep((time.monotonic() - t0) * (1 - share) / share)

    return run_paced


def committing(db: sqlite_utils.Database) -> Run:
    """``run`` for a connection of its own (the CLI): each job commits on its own."""

    def run(fn: Callable[..., Any], *args: Any) -> Any:
        with atomic(db, "retention"):
            return fn(db, *args)

    return run


# -- the batches (each a writer job) ----------------------------------------------------


def blank_visits(db: sqlite_utils.Database, before: str, limit: int) -> int:
    """Blank the IP address and user agent of up to ``limit`` visits started before."""
    cur = db.conn.execute(
        "UPDATE visits SET ip = NULL, user_agent = NULL WHERE rowid IN"
        f" (SELECT rowid {_IDENTIFYING_VISITS} LIMIT ?)",
        (before, limit),
    )
    return cur.rowcount


def blank_leases(db: sqlite_utils.Database, before: str, limit: int) -> int:
    """Blank the client address of up to ``limit`` leases taken before."""
    cur = db.conn.execute(
        f"UPDATE leases SET client = NULL WHERE id IN (SELECT id {_IDENTIFYING_LEASES} LIMIT ?)",
        (before, limit),
    )
    return cur.rowcount


def delete_visits(db: sqlite_utils.Database, before: str, limit: int) -> tuple[int, int, int]:
    """Delete up to ``limit`` visits started before, their leases, and the visitors left
    with neither; (visits, leases, visitors) deleted."""
    rows = db.conn.execute(
        f"SELECT id, visitor_id {_DUE_VISITS} ORDER BY started_at LIMIT ?2", (before, limit)
    ).fetchall()
    if not rows:
        return 0, 0, 0
    visit_ids = [r[0] for r in rows]
    visitor_ids = sorted({r[1] for r in rows})
    leases = db.conn.execute(
        "DELETE FROM leases WHERE visit_id IN (SELECT value FROM json_each(?))",
        (_json(visit_ids),),
    ).rowcount
    visits = db.conn.execute(
        "DELETE FROM visits WHERE id IN (SELECT value FROM json_each(?))", (_json(visit_ids),)
    ).rowcount
    visitors = forget_visitors_left(db, visitor_ids)
    return visits, leases, visitors


def forget_visitors_left(db: sqlite_utils.Database, visitor_ids: list[str]) -> int:
    """Delete those of the visitors who have no visit and no lease left."""
    return db.conn.execute(
        "DELETE FROM visitors WHERE id IN (SELECT value FROM json_each(?))"
        " AND NOT EXISTS (SELECT 1 FROM visits WHERE visitor_id = visitors.id)"
        " AND NOT EXISTS (SELECT 1 FROM leases WHERE visitor_id = visitors.id)",
        (_json(visitor_ids),),
    ).rowcount


def delete_unlinked_leases(db: sqlite_utils.Database, before: str, limit: int) -> int:
    """Delete up to ``limit`` leases without a visit that expired before."""
    return db.conn.execute(
        "DELETE FROM leases WHERE id IN (SELECT id FROM leases INDEXED BY idx_leases_visit"
        " WHERE visit_id IS NULL AND expires_at < ? LIMIT ?)",
        (before, limit),
    ).rowcount


def media_after(
    db: sqlite_utils.Database, before: str, after: tuple[str, int], limit: int
) -> list[tuple]:
    """Calls started before ``before`` that still reference a file, after ``after``
    (started_at, id) in that order: (id, started_at, recording_path, voicemail_path)."""
    return db.conn.execute(_MEDIA, (before, after[0], after[0], after[1], limit)).fetchall()


def calls_after(
    db: sqlite_utils.Database, before: str, after: tuple[str, int], limit: int
) -> list[tuple]:
    """Completed calls started before ``before``, after ``after``, as ``media_after``."""
    return db.conn.execute(_OLD_CALLS, (before, after[0], after[0], after[1], limit)).fetchall()


def clear_media(db: sqlite_utils.Database, kind: str, call_ids: list[int]) -> int:
    """Drop the calls' reference to their ``kind`` file (its length stays)."""
    if kind not in KINDS:
        raise ValueError(kind)
    return db.conn.execute(
        f"UPDATE calls SET {kind}_path = NULL WHERE id IN (SELECT value FROM json_each(?))",
        (_json(call_ids),),
    ).rowcount


def delete_calls(db: sqlite_utils.Database, call_ids: list[int]) -> int:
    """Delete the calls (their legs go with them)."""
    return db.conn.execute(
        "DELETE FROM calls WHERE id IN (SELECT value FROM json_each(?))", (_json(call_ids),)
    ).rowcount


# outbox rows done with, oldest first: ids grow with time, so a batch is found at the start
_DONE_EVENTS = (
    "SELECT id FROM outbox WHERE state IN ('delivered', 'dead', 'skipped') AND created_at < ?"
)


def delete_events(db: sqlite_utils.Database, before: str, limit: int) -> int:
    """Delete outbox events done with (delivered, dead, skipped) from before ``before``."""
    return db.conn.execute(
        f"DELETE FROM outbox WHERE id IN ({_DONE_EVENTS} ORDER BY id LIMIT ?)", (before, limit)
    ).rowcount


def _json(values: list) -> str:
    return json.dumps(values)


# -- files ------------------------------------------------------------------------------


@dataclass
class FileResult:
    deleted: bool  # the file is gone now (deleted, or it already was)
    missing: bool = False  # it already was


def delete_file(stored: str, readable_dir: str) -> FileResult:
    """Delete the file a row names (only ctm-pbx's own files, under ``readable_dir``)."""
    path = media.local_file(stored, readable_dir)
    if path is None:
        log.warning("retention: not deleting %s: not a ctm-pbx media file name", stored)
        return FileResult(deleted=True, missing=True)  # nothing of ours to delete
    try:
        os.unlink(path)
    except FileNotFoundError:
        return FileResult(deleted=True, missing=True)
    except OSError as exc:
        log.warning("retention: cannot delete %s: %s (its reference stays)", path, exc)
        return FileResult(deleted=False)
    return FileResult(deleted=True)


# -- the whole purge --------------------------------------------------------------------


def purge(
    run: Run, cut: Cutoffs, readable_dir: str, *, batch: int = BATCH
) -> tuple[PurgeCounts, list[str]]:
    """Blank and delete everything due by ``cut``, batch by batch; what was removed, and
    the problems met (files that could not be deleted)."""
    counts = PurgeCounts()
    problems: list[str] = []
    if cut.visits is not None:
        before = iso(cut.visits)
        while True:
            visits, leases, visitors = run(delete_visits, before, batch)
            counts.visits_deleted += visits
            counts.leases_deleted += leases
            counts.visitors_deleted += visitors
            if visits < batch:
                break
        counts.leases_deleted += _repeat(run, delete_unlinked_leases, before, batch)
    if cut.visitor_details is not None:
        before = iso(cut.visitor_details)
        counts.visits_blanked = _repeat(run, blank_visits, before, batch)
        counts.leases_blanked = _repeat(run, blank_leases, before, batch)
    _purge_media(run, cut, readable_dir, batch, counts, problems)
    if cut.calls is not None:
        _purge_calls(run, iso(cut.calls), readable_dir, batch, counts, problems)
    if cut.outbox is not None:
        counts.events_deleted = _repeat(run, delete_events, iso(cut.outbox), batch)
    return counts, problems


def _repeat(run: Run, fn: Callable[..., int], before: str, batch: int) -> int:
    total = 0
    while True:
        done = run(fn, before, batch)
        total += done
        if done < batch:
            return total


def _purge_media(
    run: Run, cut: Cutoffs, readable_dir: str, batch: int, counts: PurgeCounts, problems: list
) -> None:
    due = {kind: getattr(cut, "recordings" if kind == "recording" else kind) for kind in KINDS}
    dates = [at for at in due.values() if at is not None]
    if not dates:
        return
    before = {kind: iso(at) if at is not None else "" for kind, at in due.items()}
    after = ("", 0)
    while True:
        rows = run(media_after, iso(max(dates)), after, batch)
        cleared: dict[str, list[int]] = {kind: [] for kind in KINDS}
        for call_id, started_at, *paths in rows:
            for kind, stored in zip(KINDS, paths, strict=True):
                due_now = stored and started_at < before[kind]
                if due_now and _remove(stored, readable_dir, counts, problems):
                    cleared[kind].append(call_id)
        for kind, ids in cleared.items():
            if ids:
                run(clear_media, kind, ids)
        counts.recordings_deleted += len(cleared["recording"])
        counts.voicemail_deleted += len(cleared["voicemail"])
        if len(rows) < batch:
            return
        after = (rows[-1][1], rows[-1][0])


def _purge_calls(
    run: Run, before: str, readable_dir: str, batch: int, counts: PurgeCounts, problems: list
) -> None:
    after = ("", 0)
    while True:
        rows = run(calls_after, before, after, batch)
        gone = []
        for call_id, _started, *paths in rows:
            kept = 0
            for kind, stored in zip(KINDS, paths, strict=True):
                if not stored:
                    continue
                if not _remove(stored, readable_dir, counts, problems):
                    kept += 1
                elif kind == "recording":
                    counts.recordings_deleted += 1
                else:
                    counts.voicemail_deleted += 1
            if not kept:  # a call whose file could not be deleted stays, with its reference
                gone.append(call_id)
        if gone:
            counts.calls_deleted += run(delete_calls, gone)
        if len(rows) < batch:
            return
        after = (rows[-1][1], rows[-1][0])


def _remove(stored: str, readable_dir: str, counts: PurgeCounts, problems: list) -> bool:
    result = delete_file(stored, readable_dir)
    if result.missing:
        counts.files_missing += 1
    if not result.deleted:
        problems.append(f"cannot delete {stored}: its reference stays")
    return result.deleted


# -- a dry run --------------------------------------------------------------------------


def due(db: sqlite_utils.Database, cut: Cutoffs) -> PurgeCounts:
    """What ``purge`` would remove now, read only (files are counted by their reference)."""
    counts = PurgeCounts()
    one = lambda sql, *args: db.conn.execute(sql, args).fetchone()[0]  # noqa: E731
    if cut.visitor_details is not None:  # of what is not deleted anyway
        before = iso(cut.visitor_details)
        gone = iso(cut.visits) if cut.visits is not None else ""
        counts.visits_blanked = one(
            f"SELECT count(*) {_IDENTIFYING_VISITS} AND started_at >= ?", before, gone
        )
        counts.leases_blanked = one(
            f"SELECT count(*) {_IDENTIFYING_LEASES} AND NOT {_LEASE_DUE.replace('?1', '?2')}",
            before,
            gone,
        )
    if cut.visits is not None:
        before = iso(cut.visits)
        counts.visits_deleted = one(f"SELECT count(*) {_DUE_VISITS}", before)
        counts.leases_deleted = one(f"SELECT count(*) FROM leases WHERE {_LEASE_DUE}", before)
        counts.visitors_deleted = one(_VISITORS_DUE, before)
    calls_before = iso(cut.calls) if cut.calls is not None else ""
    if cut.calls is not None:
        counts.calls_deleted = one(
            "SELECT count(*) FROM calls WHERE started_at < ? AND status = 'completed'",
            calls_before,
        )
    for kind, at in (("recording", cut.recordings), ("voicemail", cut.voicemail)):
        # files of calls deleted anyway count as theirs, not here
        before = iso(at) if at is not None else ""
        n = one(
            f"SELECT count(*) FROM calls WHERE {kind}_path IS NOT NULL AND ("
            " (started_at < ?1) OR (started_at < ?2 AND status = 'completed'))",
            before,
            calls_before,
        )
        setattr(counts, f"{kind}s_deleted" if kind == "recording" else "voicemail_deleted", n)
    if cut.outbox is not None:
        counts.events_deleted = one(f"SELECT count(*) FROM ({_DONE_EVENTS})", iso(cut.outbox))
    return counts


def summary(counts: PurgeCounts) -> str:
    """One log line."""
    parts = [line for line in counts.lines() if not line.endswith(": 0")]
    return "retention purge: " + ("; ".join(parts) if parts else "nothing due")
