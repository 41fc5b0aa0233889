"""The outbox (table ``outbox``, migration m016): events of the call log for webhooks
and GA4, written in the transaction of the change that causes them.

The call log's store functions (``calls.insert_call``, ``calls.finish_call``,
``call_search.annotate_call``) call the hooks here, so ARI mode, AGI mode and the
call spool all emit the same events from one place, and an event exists exactly
when its change was committed. Which destination wants which event is attached to
the writer's connection (``attach``, from the daemon's wiring); a connection with
nothing attached (the CLI, most tests) writes no events. The hook costs one INSERT
per destination: the body is made by the delivery worker (adapters/outbox_delivery.py)
when it first sends the event, and kept, so that retries send the same bytes.
"""

from __future__ import annotations

import json
import uuid
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import sqlite_utils

from ctm_pbx.core.model import Config
from ctm_pbx.core.reports import QualifiedCall

GA4 = "ga4"  # the GA4 destination's name (webhook names may not take it)
STATES = ("pending", "failed", "delivered", "dead", "skipped")
OPEN = ("pending", "failed")  # still to be sent
# the body of an erased call's event: not NULL, so the worker's ``save`` keeps none
ERASED = ""

_INSERT = (
    "INSERT INTO outbox (event_id, destination, event_type, call_id, next_attempt_at,"
    " created_at, queued_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
COLUMNS = (
    "id", "event_id", "destination", "event_type", "call_id", "payload_json", "state",
    "attempts", "next_attempt_at", "last_error", "last_status", "created_at", "queued_at",
    "delivered_at",
)  # fmt: skip


@dataclass(frozen=True)
class Routing:
    """Which destinations want each event type, and what a qualified call is.
    ``notify`` (if set) is called after an event is written (before its commit):
    the delivery worker's wake-up."""

    by_event: dict[str, tuple[str, ...]] = field(default_factory=dict)
    qualified: QualifiedCall = QualifiedCall()
    notify: Callable[[], None] | None = None


def routing_for(config: Config, notify: Callable[[], None] | None = None) -> Routing:
    by_event: dict[str, list[str]] = {}
    for hook in config.webhooks.values():
        for event in hook.events:
            by_event.setdefault(event, []).append(hook.name)
    if config.ga4 is not None:
        for event in config.ga4.events:
            by_event.setdefault(event, []).append(GA4)
    return Routing(
        {k: tuple(v) for k, v in by_event.items()},
        QualifiedCall(min_talk_seconds=config.reports.qualified_min_talk_seconds),
        notify,
    )


_ROUTING: weakref.WeakKeyDictionary[sqlite_utils.Database, Routing] = weakref.WeakKeyDictionary()


def attach(db: sqlite_utils.Database, routing: Routing) -> None:
    """From now on the call log's changes on ``db`` write events for ``routing``."""
    _ROUTING[db] = routing


def detach(db: sqlite_utils.Database) -> None:
    _ROUTING.pop(db, None)


# -- the hooks of the call log -------------------------------------------------------------


def emit(db: sqlite_utils.Database, event_type: str, call_id: int, at: str) -> int:
    """Write ``event_type`` of the call for every destination that wants it (in the
    caller's transaction); returns how many rows."""
    routing = _ROUTING.get(db)
    if routing is None:
        return 0
    destinations = routing.by_event.get(event_type)
    if not destinations:
        return 0
    event_id = f"evt_{uuid.uuid4().hex}"
    db.conn.executemany(
        _INSERT, [(event_id, dest, event_type, call_id, at, at, at) for dest in destinations]
    )
    if routing.notify is not None:
        routing.notify()
    return len(destinations)


def call_finished(
    db: sqlite_utils.Database, call_id: int, outcome: str, talk_seconds: float, at: str
) -> None:
    """``call.completed``, and ``call.qualified`` when the call counts as one."""
    routing = _ROUTING.get(db)
    if routing is None:
        return
    emit(db, "call.completed", call_id, at)
    if routing.qualified(outcome, talk_seconds):
        emit(db, "call.qualified", call_id, at)


# -- the delivery worker's side ------------------------------------------------------------


@dataclass
class Delivery:
    """One outbox row as the worker holds it."""

    id: int
    event_id: str
    destination: str
    event_type: str
    call_id: int | None
    payload: bytes | None
    state: str
    attempts: int
    next_attempt_at: str
    created_at: str
    queued_at: str
    last_error: str | None = None
    last_status: int | None = None
    delivered_at: str | None = None


def _delivery(row: tuple) -> Delivery:
    d = dict(zip(COLUMNS, row, strict=True))
    payload = d.pop("payload_json")
    return Delivery(payload=payload.encode() if payload else None, **d)  # ERASED: none


def due(db: sqlite_utils.Database, destination: str, limit: int = 64) -> list[Delivery]:
    """The destination's next events to send, oldest first (the order they are sent in)."""
    rows = db.execute(
        f"SELECT {', '.join(COLUMNS)} FROM outbox INDEXED BY idx_outbox_due"
        " WHERE destination = ? AND state IN ('pending', 'failed') ORDER BY id LIMIT ?",
        [destination, limit],
    ).fetchall()
    return [_delivery(r) for r in rows]


def disabled(db: sqlite_utils.Database, destination: str) -> str | None:
    """Why the destination is disabled (an HTTP 410), or None."""
    row = db.execute(
        "SELECT disabled_at, reason FROM outbox_destinations WHERE destination = ?",
        [destination],
    ).fetchone()
    if row is None or row[0] is None:
        return None
    return f"{row[1]} (since {row[0]})"


def save(db: sqlite_utils.Database, deliveries: Iterable[Delivery]) -> None:
    """Write what the worker did (state, attempts, body as first sent ...)."""
    db.conn.executemany(
        "UPDATE outbox SET state = ?, attempts = ?, next_attempt_at = ?, last_error = ?,"
        " last_status = ?, delivered_at = ?, payload_json = coalesce(payload_json, ?)"
        " WHERE id = ?",
        [
            (
                d.state,
                d.attempts,
                d.next_attempt_at,
                d.last_error,
                d.last_status,
                d.delivered_at,
                d.payload.decode() if d.payload is not None else None,
                d.id,
            )
            for d in deliveries
        ],
    )


def forget_bodies(db: sqlite_utils.Database, call_ids: list[int]) -> int:
    """The stored bodies of these calls' events are dropped (erasure: they hold the call
    as it was), and never kept again: the worker may be sending one it made before the
    erasure, and must not write it back. Events still to send are built again, from the
    call as it is now, at each try."""
    if not call_ids:
        return 0
    return db.conn.execute(
        "UPDATE outbox SET payload_json = ? WHERE call_id IN (SELECT value FROM json_each(?))"
        " AND payload_json IS NOT ?",
        (ERASED, json.dumps(call_ids), ERASED),
    ).rowcount


def disable(db: sqlite_utils.Database, destination: str, at: str, reason: str) -> None:
    db.execute(
        "INSERT INTO outbox_destinations (destination, disabled_at, reason) VALUES (?, ?, ?)"
        " ON CONFLICT (destination) DO UPDATE SET disabled_at = excluded.disabled_at,"
        " reason = excluded.reason",
        [destination, at, reason],
    )


# -- the CLI's side --------------------------------------------------------------------------


def summary(db: sqlite_utils.Database) -> dict[str, dict]:
    """Per destination: events by state, the oldest open one, and whether it is disabled."""
    out: dict[str, dict] = {}
    for dest, state, n, oldest in db.execute(
        "SELECT destination, state, count(*), min(created_at) FROM outbox"
        " GROUP BY destination, state"
    ).fetchall():
        row = out.setdefault(dest, {s: 0 for s in STATES} | {"oldest_open": None})
        row[state] = n
        if state in OPEN and (row["oldest_open"] is None or oldest < row["oldest_open"]):
            row["oldest_open"] = oldest
    for dest, at, reason in db.execute(
        "SELECT destination, disabled_at, reason FROM outbox_destinations"
        " WHERE disabled_at IS NOT NULL"
    ).fetchall():
        row = out.setdefault(dest, {s: 0 for s in STATES} | {"oldest_open": None})
        row["disabled"] = f"{reason} (since {at})"
    return out


def backlog(
    db: sqlite_utils.Database, destinations: Iterable[str] = ()
) -> dict[tuple[str, str], int]:
    """Events still to send, per (destination, state in ``OPEN``): ``destinations`` (the
    configured ones) with zeros, and any other the outbox holds (the metrics). Reads the
    open rows only (the partial index ``idx_outbox_due``)."""
    out = {(dest, state): 0 for dest in destinations for state in OPEN}
    for dest, state, n in db.execute(
        "SELECT destination, state, count(*) FROM outbox"
        " WHERE state IN ('pending', 'failed') GROUP BY destination, state"
    ).fetchall():
        out[(dest, state)] = n
    return out


def destination_rows(db: sqlite_utils.Database, configured: dict[str, str]) -> list[dict]:
    """``summary`` as rows, for ``configured`` (name: URL) and whatever else the outbox
    holds (a destination since removed from the config)."""
    counts = summary(db)
    rows = []
    for name in dict.fromkeys([*configured, *counts]):
        c = counts.get(name, {})
        rows.append(
            {
                "destination": name,
                "url": configured.get(name, "(no longer configured)"),
                **{s: c.get(s, 0) for s in STATES},
                "oldest_open": c.get("oldest_open"),
                "disabled": c.get("disabled"),
            }
        )
    return rows


def configured(config: Config) -> dict[str, str]:
    """The configured destinations and where they send to."""
    out = {name: hook.url for name, hook in config.webhooks.items()}
    if config.ga4 is not None:
        out[GA4] = config.ga4.endpoint
    return out


def events(
    db: sqlite_utils.Database, destination: str, state: str | None = None, limit: int = 50
) -> list[Delivery]:
    """The destination's events, newest first."""
    where, args = "destination = ?", [destination]
    if state is not None:
        where += " AND state = ?"
        args.append(state)
    rows = db.execute(
        f"SELECT {', '.join(COLUMNS)} FROM outbox WHERE {where} ORDER BY id DESC LIMIT ?",
        [*args, limit],
    ).fetchall()
    return [_delivery(r) for r in rows]


def retry(
    db: sqlite_utils.Database, destination: str, now: str, event_id: str | None = None
) -> int:
    """Send the destination's failed and dead events again (or just ``event_id``, in any
    state), from a fresh count of attempts and a fresh age (``outbox.max_age_hours``
    counts from now; waiting events too: a destination a 410 disabled had them wait),
    and enable it again if a 410 disabled it. Returns how many events will be sent."""
    where, args = "destination = ? AND state IN ('pending', 'failed', 'dead')", [destination]
    if event_id is not None:
        where, args = "destination = ? AND event_id = ?", [destination, event_id]
    cur = db.execute(
        "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?,"
        f" queued_at = ? WHERE {where}",
        [now, now, *args],
    )
    db.execute("DELETE FROM outbox_destinations WHERE destination = ?", [destination])
    return cur.rowcount
