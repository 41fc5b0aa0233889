"""Attributing a call to a website visit when it starts (runs on the store's writer).

It does not delay the call: the routing decision leaves for Asterisk while
this runs beside the insert of the call row. ``attribute_call`` is also the
entry point for attributing a call later (an imported or re-scored call):
everything it reads is as of ``now``, the call's start.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

import sqlite_utils

from ctm_pbx.adapters.store import leases as lease_store
from ctm_pbx.adapters.store import visitors as visitor_store
from ctm_pbx.core.attribution import (
    RepeatLink,
    attribute,
    by_source,
    evidence_of,
    link_repeat_caller,
)
from ctm_pbx.core.call.actions import StartCall
from ctm_pbx.core.clock import iso, parse_iso
from ctm_pbx.core.model import Config

REPEAT_CALLER_DAYS = 90

_UPDATE = (
    "UPDATE calls SET visitor_id = ?, visit_id = ?, attribution_confidence = ?,"
    " attribution_reason = ?, attribution_candidates_json = ?, landing_url = ?, referrer = ?,"
    " utm_source = ?, utm_medium = ?, utm_campaign = ?, utm_term = ?, utm_content = ?,"
    " click_ids_json = ?, pages = ?, previous_call_id = ? WHERE id = ?"
)


def attribute_call(
    db: sqlite_utils.Database, config: Config, call_id: int, start: StartCall, now: datetime
) -> tuple[str | None, float | None]:
    """Attribute the call's row; its visitor and the confidence."""
    source = config.sources.get(start.source or "")
    visitor_id = visit_id = None
    candidates: list[dict] = []
    previous = _repeat_link(db, call_id, start, now)
    decided = by_source(source, start.pool)
    if decided is not None:
        confidence, reason = decided
    else:
        window = config.tracking.attribution_window_minutes
        history = lease_store.lease_history(
            db, start.tracking_number, now - timedelta(minutes=window), now
        )
        evidence = evidence_of(previous, start.caller_number)
        if evidence.caller_zones:  # the candidates' browser zones, for the time-zone factor
            visitors = list(dict.fromkeys(lease.visitor_id for lease in history))
            if evidence.repeat_visitor:
                visitors.append(evidence.repeat_visitor)
            zones = visitor_store.visitor_time_zones(db, visitors)
            evidence = replace(evidence, visitor_zones=zones)
        att = attribute(start.tracking_number, now, history, window, evidence)
        visitor_id, visit_id = att.visitor_id, att.visit_id
        confidence, reason = round(att.confidence, 4), att.reason
        candidates = [
            {
                "visitor_id": c.visitor_id,
                "visit_id": c.visit_id,
                "weight": round(c.weight, 4),
                "idle_minutes": round(c.idle_minutes, 1),
                "active": c.active,
                "open_page": c.open_page,
                "repeat": c.repeat,
                "zone_hours": c.zone_hours,
            }
            for c in att.candidates
        ]
        candidates.append(
            {"visitor_id": None, "someone_else": True, "weight": round(att.someone_else, 4)}
        )
    visit = visitor_store.get_visit(db, visit_id) if visit_id else None
    if visit is None and visitor_id:
        visitor = visitor_store.get_visitor(db, visitor_id)
        if visitor and visitor.get("visit_id"):
            visit = visitor_store.get_visit(db, visitor["visit_id"])
    v = visit or {}
    db.conn.execute(
        _UPDATE,
        (
            visitor_id,
            v.get("id", visit_id),
            confidence,
            reason,
            json.dumps(candidates),
            v.get("landing_url"),
            v.get("referrer"),
            v.get("utm_source"),
            v.get("utm_medium"),
            v.get("utm_campaign"),
            v.get("utm_term"),
            v.get("utm_content"),
            json.dumps(v.get("click_ids") or {}),
            v.get("pages"),
            previous.call_id if previous else None,
            call_id,
        ),
    )
    return visitor_id, confidence


def _repeat_link(
    db: sqlite_utils.Database, call_id: int, start: StartCall, now: datetime
) -> RepeatLink | None:
    """The caller's latest earlier call within the last days, with its visitor if it had one."""
    caller = start.caller_number
    if not caller or not caller.startswith("+"):
        return None
    since = iso(now - timedelta(days=REPEAT_CALLER_DAYS))
    rows = db.conn.execute(
        "SELECT id, visitor_id, started_at, attribution_confidence, visit_id FROM calls"
        " WHERE caller_number = ? AND id != ? AND started_at >= ?"
        " ORDER BY started_at DESC LIMIT 20",
        (caller, call_id, since),
    ).fetchall()
    if not rows:
        return None
    link = link_repeat_caller([tuple(r) for r in rows], now)
    return link or RepeatLink(rows[0][0], "", parse_iso(rows[0][2]), 0.0)
