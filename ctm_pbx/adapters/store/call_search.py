"""The call log as a person browses it: filtered, searched, a page at a time; and
what a person adds to a call (tags, a comment)."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime

import sqlite_utils

from ctm_pbx.adapters.store import outbox
from ctm_pbx.adapters.store.reports import filter_sql
from ctm_pbx.core.clock import iso
from ctm_pbx.core.reports import Filters

LIST_COLUMNS = (
    "id", "started_at", "tracking_number", "caller_number", "caller_place", "source",
    "utm_campaign", "route", "status", "outcome", "ring_seconds", "talk_seconds",
    "answered_by", "attribution_confidence", "failsafe", "tags", "recording_path",
    "voicemail_path", "previous_call_id",
)  # fmt: skip


def _where(filters: Filters, start: datetime | None, end: datetime | None) -> tuple[str, list]:
    where, args = filter_sql(filters)
    if start is not None:
        where.append("c.started_at >= ?")
        args.append(iso(start))
    if end is not None:
        where.append("c.started_at < ?")
        args.append(iso(end))
    return (" WHERE " + " AND ".join(where)) if where else "", args


def search_calls(
    db: sqlite_utils.Database,
    filters: Filters,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
    full: bool = False,
) -> list[dict]:
    """Calls newest first; ``tags`` as a list. ``full``: every column, with the route
    path (``path``) decoded."""
    where, args = _where(filters, start, end)
    present = _columns(db)  # a reader may face an older schema (it says so)
    columns = present if full else [c for c in LIST_COLUMNS if c in present]
    cur = db.execute(
        f"SELECT {', '.join('c.' + c for c in columns)} FROM calls c{where}"
        " ORDER BY c.started_at DESC, c.id DESC LIMIT ? OFFSET ?",
        [*args, limit, offset],
    )
    rows = [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
    for row in rows:
        for missing in LIST_COLUMNS:
            row.setdefault(missing, None)
        row["tags"] = split_tags(row["tags"])
        if full:
            row["path"] = json.loads(row.pop("path_json") or "[]")
    return rows


def count_calls(
    db: sqlite_utils.Database,
    filters: Filters,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> int:
    where, args = _where(filters, start, end)
    return db.execute(f"SELECT COUNT(*) FROM calls c{where}", args).fetchone()[0]


def caller_calls(db: sqlite_utils.Database, caller: str, *, exclude: int, limit: int = 20):
    """The caller's other calls, newest first."""
    cur = db.execute(
        "SELECT id, started_at, tracking_number, source, outcome, talk_seconds FROM calls"
        " WHERE caller_number = ? AND id != ? ORDER BY started_at DESC LIMIT ?",
        [caller, exclude, limit],
    )
    names = ("id", "started_at", "tracking_number", "source", "outcome", "talk_seconds")
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def split_tags(text: str | None) -> list[str]:
    return [t for t in (text or "").split(",") if t]


def join_tags(tags: list[str]) -> str:
    return f",{','.join(tags)}," if tags else ""


def annotate_call(db: sqlite_utils.Database, call_id: int, tags: list[str], comment: str) -> bool:
    """Set a call's tags and comment; False when there is no such call."""
    before = db.execute("SELECT tags FROM calls WHERE id = ?", [call_id]).fetchone()
    cur = db.execute(
        "UPDATE calls SET tags = ?, comment = ? WHERE id = ?", [join_tags(tags), comment, call_id]
    )
    if before is not None and split_tags(before[0]) != list(tags):
        outbox.emit(db, "call.tagged", call_id, iso(datetime.now(UTC)))  # issue 20's hook
    return cur.rowcount > 0


def path_entries(call: dict) -> list[dict]:
    """The call's route path (the store keeps it as JSON)."""
    value = call.get("path")
    if isinstance(value, list):
        return value
    return json.loads(call.get("path_json") or "[]")


def calls_by_id(db: sqlite_utils.Database, ids: list[int]) -> list[dict]:
    if not ids:
        return []
    marks = ",".join("?" for _ in ids)
    cur = db.execute(
        f"SELECT {', '.join('c.' + c for c in LIST_COLUMNS)} FROM calls c WHERE c.id IN ({marks})"
        " ORDER BY c.id",
        ids,
    )
    rows = [dict(zip(LIST_COLUMNS, row, strict=True)) for row in cur.fetchall()]
    for row in rows:
        row["tags"] = split_tags(row["tags"])
    return rows


EXPORT_BATCH = 5000


def write_csv(stream, rows: list[dict]) -> None:
    """Call rows as CSV: the list columns, tags space-separated, no JSON."""
    writer = csv.DictWriter(stream, fieldnames=list(LIST_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "tags": " ".join(row["tags"])})


def export_csv(
    stream, db: sqlite_utils.Database, filters: Filters, start: datetime, end: datetime
) -> int:
    """Every call started in [start, end) as CSV, oldest first, ``EXPORT_BATCH`` rows at a
    time (keyset on started_at, id: memory stays flat however long the period)."""
    columns = [c for c in _columns(db) if not c.endswith("_json")]
    writer = csv.writer(stream)
    writer.writerow(columns)
    where, args = _where(filters, start, end)
    where = where or " WHERE 1"
    after: tuple[str, int] = ("", 0)
    count = 0
    select = ", ".join("c." + c for c in columns)
    at, ident = columns.index("started_at"), columns.index("id")
    while True:
        cur = db.execute(
            f"SELECT {select} FROM calls c{where} AND (c.started_at, c.id) > (?, ?)"
            " ORDER BY c.started_at, c.id LIMIT ?",
            [*args, *after, EXPORT_BATCH],
        )
        rows = cur.fetchall()
        if not rows:
            return count
        writer.writerows(rows)
        count += len(rows)
        after = (rows[-1][at], rows[-1][ident])


def _columns(db: sqlite_utils.Database) -> list[str]:
    return [row[1] for row in db.execute("PRAGMA table_info(calls)").fetchall()]
