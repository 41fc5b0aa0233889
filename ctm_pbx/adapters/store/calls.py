"""The call log: ``calls`` (one row per call) and ``call_legs`` (the route path)."""

from __future__ import annotations

import json

import sqlite_utils

from ctm_pbx.core.callflow import FinishCall, FinishStep, StartCall, StartStep


def insert_call(
    db: sqlite_utils.Database,
    start: StartCall,
    *,
    channel_id: str,
    linkedid: str | None,
    mode: str = "ari",
) -> int:
    """Create the row as the call starts; returns its id."""
    row = {
        "mode": mode,
        "status": "in_progress",
        "started_at": start.started_at,
        "tracking_number": start.tracking_number,
        "caller_number": start.caller_number,
        "caller_name": start.caller_name,
        "source": start.source,
        "pool": start.pool,
        "route": start.route,
        "channel_id": channel_id,
        "linkedid": linkedid,
    }
    return db["calls"].insert(row).last_pk  # type: ignore[return-value]


def insert_step(db: sqlite_utils.Database, call_id: int, step: StartStep) -> None:
    db["call_legs"].insert_all(
        {
            "call_id": call_id,
            "step": step.step,
            "route": step.route or None,
            "receiving_number": ring.name,
            "number": ring.number or None,
            "dial_string": ring.dial_string or None,
            "started_at": step.started_at,
        }
        for ring in step.rings
    )


def finish_step(db: sqlite_utils.Database, call_id: int, fin: FinishStep) -> None:
    for res in fin.results:
        talk = fin.talk_seconds if res.result == "answered" else 0.0
        db.execute(
            "UPDATE call_legs SET ended_at = ?, result = ?, dial_status = ?, ring_seconds = ?,"
            " talk_seconds = ?, hangup_cause = ?"
            " WHERE call_id = ? AND step = ? AND receiving_number = ?",
            [
                fin.ended_at,
                res.result,
                fin.dial_status,
                fin.ring_seconds,
                talk,
                fin.cause,
                call_id,
                fin.step,
                res.name,
            ],
        )


def finish_call(db: sqlite_utils.Database, call_id: int, fin: FinishCall) -> None:
    db["calls"].update(
        call_id,
        {
            "status": "completed",
            "ended_at": fin.ended_at,
            "answered_at": fin.answered_at,
            "outcome": fin.outcome.value,
            "hangup_cause": fin.hangup_cause,
            "ring_seconds": fin.ring_seconds,
            "talk_seconds": fin.talk_seconds,
            "answered_by": fin.answered_by,
            "answered_number": fin.answered_number,
            "failsafe": int(fin.failsafe),
            "path_json": json.dumps(list(fin.path)),
            "notes": fin.notes,
        },
    )


def get_call(db: sqlite_utils.Database, call_id: int) -> dict | None:
    rows = list(db["calls"].rows_where("id = ?", [call_id]))
    if not rows:
        return None
    call = rows[0]
    call["path"] = json.loads(call.pop("path_json") or "[]")
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
