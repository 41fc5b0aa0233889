"""The call log as a person browses it: filtered, searched, a page at a time; and
what a person adds to a call (tags, a comment)."""

from __future__ import annotations

import json
from datetime import datetime

import sqlite_utils

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
    if filters.tag:
        where.append("instr(c.tags, ?) > 0")
        args.append(f",{filters.tag},")
    return (" WHERE " + " AND ".join(where)) if where else "", args


def search_calls(
    db: sqlite_utils.Database,
    filters: Filters,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict]:
    """Calls newest first; ``tags`` as a list."""
    where, args = _where(filters, start, end)
    cur = db.execute(
        f"SELECT {', '.join('c.' + c for c in LIST_COLUMNS)} FROM calls c{where}"
        " ORDER BY c.started_at DESC, c.id DESC LIMIT ? OFFSET ?",
        [*args, limit, offset],
    )
    rows = [dict(zip(LIST_COLUMNS, row, strict=True)) for row in cur.fetchall()]
    for row in rows:
        row["tags"] = split_tags(row["tags"])
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
    cur = db.execute(
        "UPDATE calls SET tags = ?, comment = ? WHERE id = ?", [join_tags(tags), comment, call_id]
    )
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
