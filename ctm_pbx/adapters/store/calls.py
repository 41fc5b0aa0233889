"""The call log: ``calls`` (one row per call) and ``call_legs`` (the route path)."""

from __future__ import annotations

import json

import sqlite_utils

from ctm_pbx.adapters.store import outbox
from ctm_pbx.core.call.actions import (
    FinishCall,
    FinishStep,
    RecordInput,
    RecordQueue,
    StartCall,
    StartStep,
)

# The hot path (one call = a few of these) uses plain SQL: sqlite-utils' table
# helpers introspect the schema on every call.
_INSERT_CALL = (
    "INSERT INTO calls (id, mode, status, started_at, tracking_number, caller_number, caller_name,"
    " source, pool, route, channel_id, linkedid, caller_place, caller_region, caller_area_code,"
    " caller_location_source)"
    " VALUES (?, ?, 'in_progress', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_LEG = (
    "INSERT INTO call_legs (call_id, step, route, receiving_number, number, dial_string,"
    " started_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_FINISH_LEG = (
    "UPDATE call_legs SET ended_at = ?, result = ?, dial_status = ?, ring_seconds = ?,"
    " talk_seconds = ?, hangup_cause = ? WHERE call_id = ? AND step = ? AND receiving_number = ?"
)
_FINISH_CALL = (
    "UPDATE calls SET status = 'completed', ended_at = ?, answered_at = ?, outcome = ?,"
    " hangup_cause = ?, ring_seconds = ?, talk_seconds = ?, answered_by = ?, answered_number = ?,"
    " failsafe = ?, path_json = ?, notes = ? WHERE id = ?"
)


def insert_call(
    db: sqlite_utils.Database,
    start: StartCall,
    *,
    channel_id: str,
    linkedid: str | None,
    mode: str = "ari",
    call_id: int | None = None,
) -> int:
    """Create the row as the call starts; returns its id: ``call_id`` if given (the
    writer runs the job again after a failed commit: the id it gave then stays)."""
    where = start.location
    cur = db.conn.execute(
        _INSERT_CALL,
        (
            call_id,
            mode,
            start.started_at,
            start.tracking_number,
            start.caller_number,
            start.caller_name,
            start.source,
            start.pool,
            start.route,
            channel_id,
            linkedid,
            where.place if where else None,
            where.region if where else None,
            where.area_code if where else None,
            where.source if where else None,
        ),
    )
    new_id: int = cur.lastrowid  # type: ignore[assignment]
    outbox.emit(db, "call.started", new_id, start.started_at)  # the outbox hook (issue 20)
    return new_id


def insert_step(db: sqlite_utils.Database, call_id: int, step: StartStep) -> None:
    db.conn.executemany(
        _INSERT_LEG,
        [
            (
                call_id,
                step.step,
                step.route or None,
                ring.name,
                ring.number or None,
                ring.dial_string or None,
                step.started_at,
            )
            for ring in step.rings
        ],
    )


def finish_step(db: sqlite_utils.Database, call_id: int, fin: FinishStep) -> None:
    db.conn.executemany(
        _FINISH_LEG,
        [
            (
                fin.ended_at,
                res.result,
                fin.dial_status,
                fin.ring_seconds,
                fin.talk_seconds if res.result == "answered" else 0.0,
                fin.cause,
                call_id,
                fin.step,
                res.name,
            )
            for res in fin.results
        ],
    )


def finish_call(db: sqlite_utils.Database, call_id: int, fin: FinishCall) -> None:
    db.conn.execute(
        _FINISH_CALL,
        (
            fin.ended_at,
            fin.answered_at,
            fin.outcome.value,
            fin.hangup_cause,
            fin.ring_seconds,
            fin.talk_seconds,
            fin.answered_by,
            fin.answered_number,
            int(fin.failsafe),
            json.dumps(list(fin.path)),
            fin.notes,
            call_id,
        ),
    )
    # the outbox hook (issue 20): call.completed, call.qualified
    outbox.call_finished(db, call_id, fin.outcome.value, fin.talk_seconds, fin.ended_at)


def record_input(db: sqlite_utils.Database, call_id: int, rec: RecordInput) -> None:
    """The caller's keys so far, and their location when a ZIP code placed them."""
    where = rec.location
    if where is not None and where.source == "zip":
        db.conn.execute(
            "UPDATE calls SET ivr_digits = ?, caller_zip = ?, caller_county = ?,"
            " caller_region = ?, caller_place = ?, caller_location_source = 'zip' WHERE id = ?",
            (rec.digits, where.zip, where.county, where.region, where.place, call_id),
        )
    else:
        db.conn.execute("UPDATE calls SET ivr_digits = ? WHERE id = ?", (rec.digits, call_id))


def record_queue(db: sqlite_utils.Database, call_id: int, rec: RecordQueue) -> None:
    db.conn.execute(
        "UPDATE calls SET queue_name = ?, queue_status = ?, queue_position = ?,"
        " queue_wait_seconds = ?, queue_agent = ? WHERE id = ?",
        (rec.queue, rec.status, rec.position, rec.wait_seconds, rec.agent, call_id),
    )


def record_media(
    db: sqlite_utils.Database, call_id: int, kind: str, path: str, seconds: float | None
) -> None:
    """A recording (``kind`` "recording") or voicemail message ("voicemail") of the call."""
    if kind not in ("recording", "voicemail"):
        raise ValueError(kind)
    db.conn.execute(
        f"UPDATE calls SET {kind}_path = ?, {kind}_seconds = ? WHERE id = ?",
        (path, seconds, call_id),
    )


def get_call(db: sqlite_utils.Database, call_id: int) -> dict | None:
    rows = list(db["calls"].rows_where("id = ?", [call_id]))
    if not rows:
        return None
    call = rows[0]
    call["path"] = json.loads(call.pop("path_json") or "[]")
    if "attribution_candidates_json" in call:
        call["attribution_candidates"] = json.loads(call.pop("attribution_candidates_json"))
        call["click_ids"] = json.loads(call.pop("click_ids_json") or "{}")
    call["legs"] = list(db["call_legs"].rows_where("call_id = ?", [call_id], order_by="step, id"))
    return call


def call_by_channel(db: sqlite_utils.Database, channel_id: str) -> dict | None:
    rows = list(db["calls"].rows_where("channel_id = ?", [channel_id], select="id"))
    return get_call(db, rows[0]["id"]) if rows else None


def list_calls(
    db: sqlite_utils.Database,
    *,
    limit: int = 50,
    number: str | None = None,
    source: str | None = None,
    outcome: str | None = None,
    since: str | None = None,
) -> list[dict]:
    where, args = [], []
    for clause, val in (
        ("tracking_number = ?", number),
        ("source = ?", source),
        ("outcome = ?", outcome),
        ("started_at >= ?", since),
    ):
        if val is not None:
            where.append(clause)
            args.append(val)
    rows = db["calls"].rows_where(
        " AND ".join(where) or None, args, order_by="started_at DESC, id DESC", limit=limit
    )
    out = []
    for row in rows:
        row["path"] = json.loads(row.pop("path_json") or "[]")
        out.append(row)
    return out


def open_calls(db: sqlite_utils.Database) -> list[dict]:
    """Rows of calls still in progress (for reconciliation)."""
    return [
        get_call(db, r["id"])  # type: ignore[misc]
        for r in db["calls"].rows_where("status = 'in_progress'", select="id", order_by="id")
    ]
