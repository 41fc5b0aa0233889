"""Website visitors and their visits (touches): who came, from where, and what the
page reported (time zone, language, GA ids). Plain SQL: sqlite-utils' table helpers
introspect the schema on every call. Times are stored as ISO 8601 UTC text
(``ctm_pbx.core.clock.iso``), which sorts as time does."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from ctm_pbx.adapters.store.db import one_row
from ctm_pbx.core.clock import iso

_UPSERT_VISITOR = (
    "INSERT INTO visitors (id, first_seen_at, last_seen_at, source, visit_id)"
    " VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET"
    " last_seen_at = max(visitors.last_seen_at, excluded.last_seen_at),"
    " visit_id = CASE WHEN excluded.source IS NULL THEN visitors.visit_id"
    " ELSE excluded.visit_id END,"
    " source = coalesce(excluded.source, visitors.source)"
)
_INSERT_VISIT = (
    "INSERT INTO visits (id, visitor_id, started_at, last_active_at, source, source_rule,"
    " landing_url, referrer, utm_source, utm_medium, utm_campaign, utm_term, utm_content,"
    " click_ids_json, pages, ip, user_agent, time_zone, language, ga_client_id, ga_session_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)"
)
_TOUCH_VISIT = (
    "UPDATE visits SET last_active_at = max(last_active_at, ?), pages = pages + ? WHERE id = ?"
)
_TOUCH_VISITOR = (
    "UPDATE visitors SET last_seen_at = max(last_seen_at, ?)"
    " WHERE id = (SELECT visitor_id FROM visits WHERE id = ?)"
)
_SEEN_VISITOR = "UPDATE visitors SET last_seen_at = max(last_seen_at, ?) WHERE id = ?"
_UTM = ("source", "medium", "campaign", "term", "content")


def upsert_visitor(
    db: sqlite_utils.Database,
    visitor_id: str,
    *,
    now: datetime,
    source: str | None = None,
    visit_id: str | None = None,
) -> None:
    """Create the visitor or mark them seen at ``now``.

    ``source`` (with the ``visit_id`` that set it) replaces the attributed
    source when given: whether a visit takes over (first/last touch) is the
    caller's decision.
    """
    at = iso(now)
    db.conn.execute(_UPSERT_VISITOR, (visitor_id, at, at, source, visit_id))


def get_visitor(db: sqlite_utils.Database, visitor_id: str) -> dict[str, Any] | None:
    return one_row(db, "SELECT * FROM visitors WHERE id = ?", (visitor_id,))


@dataclass(frozen=True)
class VisitorState:
    """What a visit needs of a stored visitor (``visitor_state``): its attributed
    source, the visit that set it, and its latest visit."""

    id: str
    source: str | None
    first_seen_at: str
    visit_id: str | None  # the visit that set ``source``
    touch_started_at: str | None  # that visit's start (None: no such visit stored)
    touch_rule: str | None  # the rule that matched it
    latest_visit: str | None  # the visitor's latest visit (by start)
    latest_active_at: str | None  # its last activity
    visits_since: int  # visits started at or after ``since`` (``max_visits_per_day``)


# one read for the visitor, the visit it is attributed to and its latest visit (the
# visit-API's new visits: a statement costs more than the rows it reads)
_VISITOR_STATE = (
    "SELECT v.id, v.source, v.first_seen_at, v.visit_id, t.started_at, t.source_rule,"
    " l.id, l.last_active_at,"
    " (SELECT count(*) FROM visits WHERE visitor_id = v.id AND started_at >= ?2)"
    " FROM visitors v"
    " LEFT JOIN visits t ON t.id = v.visit_id"
    " LEFT JOIN visits l ON l.id = (SELECT id FROM visits WHERE visitor_id = v.id"
    " ORDER BY started_at DESC LIMIT 1)"
    " WHERE v.id = ?1"
)


def visitor_state(
    db: sqlite_utils.Database, visitor_id: str, since: datetime
) -> VisitorState | None:
    """The stored visitor ``visitor_id`` (None: not stored), its visits counted from
    ``since``."""
    row = db.conn.execute(_VISITOR_STATE, (visitor_id, iso(since))).fetchone()
    return VisitorState(*row) if row else None


def insert_visit(
    db: sqlite_utils.Database,
    visit_id: str,
    visitor_id: str,
    *,
    now: datetime,
    source: str | None = None,
    source_rule: str | None = None,
    landing_url: str | None = None,
    referrer: str | None = None,
    utm: dict[str, str | None] | None = None,
    click_ids: dict[str, str] | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    signals: tuple[str | None, str | None, str | None, str | None] = (None, None, None, None),
) -> None:
    """A new visit (first page view at ``now``); the visitor must exist.

    ``utm`` keys are ``source``, ``medium``, ``campaign``, ``term``, ``content``
    (with or without the ``utm_`` prefix); ``signals``: what the page reported (time
    zone, language, GA client and session ids), as ``note_visit_signals`` takes them.
    """
    at = iso(now)
    utm = {k.removeprefix("utm_"): v for k, v in (utm or {}).items()}
    db.conn.execute(
        _INSERT_VISIT,
        (
            visit_id,
            visitor_id,
            at,
            at,
            source,
            source_rule,
            landing_url,
            referrer,
            *(utm.get(k) for k in _UTM),
            json.dumps(click_ids or {}, sort_keys=True),
            ip,
            user_agent,
            *signals,
        ),
    )


def touch_visit(
    db: sqlite_utils.Database,
    visit_id: str,
    now: datetime,
    *,
    page_view: bool = True,
    visitor: bool = True,
) -> bool:
    """Another page view (or, ``page_view=False``, a heartbeat) of the visit, and its
    visitor seen (``visitor=False``: the caller writes the visitor's row itself).

    False if there is no such visit.
    """
    at = iso(now)
    cur = db.conn.execute(_TOUCH_VISIT, (at, int(page_view), visit_id))
    if not cur.rowcount:
        return False
    if visitor:
        db.conn.execute(_TOUCH_VISITOR, (at, visit_id))
    return True


def touch_visits(
    db: sqlite_utils.Database,
    visits: dict[str, tuple[datetime, int]],
    visitors: dict[str, datetime],
) -> None:
    """Page views answered from memory: each visit's latest activity and page count,
    each visitor's last seen."""
    db.conn.executemany(
        _TOUCH_VISIT, [(iso(at), pages, vid) for vid, (at, pages) in visits.items()]
    )
    db.conn.executemany(_SEEN_VISITOR, [(iso(at), vid) for vid, at in visitors.items()])


_VISIT_SIGNALS = (
    "UPDATE visits SET time_zone = coalesce(?, time_zone), language = coalesce(?, language),"
    " ga_client_id = coalesce(?, ga_client_id), ga_session_id = coalesce(?, ga_session_id)"
    " WHERE id = ?"
)


def note_visit_signals(
    db: sqlite_utils.Database,
    visit_id: str,
    *,
    time_zone: str | None = None,
    language: str | None = None,
    ga_client_id: str | None = None,
    ga_session_id: str | None = None,
) -> None:
    """What the page reported with a page view of the visit; what it did not report keeps
    its earlier value (Google Analytics may set its cookies after the first page)."""
    db.conn.execute(_VISIT_SIGNALS, (time_zone, language, ga_client_id, ga_session_id, visit_id))


def visitor_time_zones(db: sqlite_utils.Database, visitor_ids: list[str]) -> dict[str, str]:
    """The browser time zone of each visitor's latest visit that reported one."""
    if not visitor_ids:
        return {}
    rows = db.conn.execute(
        "SELECT visitor_id, time_zone FROM visits"
        " WHERE visitor_id IN (SELECT value FROM json_each(?)) AND time_zone IS NOT NULL"
        " ORDER BY started_at",
        (json.dumps(visitor_ids),),
    )
    return dict(rows.fetchall())


def get_visit(db: sqlite_utils.Database, visit_id: str) -> dict[str, Any] | None:
    row = one_row(db, "SELECT * FROM visits WHERE id = ?", (visit_id,))
    if row is not None:
        row["click_ids"] = json.loads(row.pop("click_ids_json"))
    return row
