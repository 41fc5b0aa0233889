"""Per-route memory that outlives the daemon (round-robin counters)."""

from __future__ import annotations

import json

import sqlite_utils

from ctm_pbx.core.routing import RouteMemory


def load_route_memory(db: sqlite_utils.Database) -> dict[str, RouteMemory]:
    return {
        row["route"]: RouteMemory.from_dict(json.loads(row["state_json"]).get("current", {}))
        for row in db["route_state"].rows
    }


def save_route_memory(
    db: sqlite_utils.Database, route: str, memory: RouteMemory, *, now: str
) -> None:
    db.conn.execute(
        "INSERT INTO route_state (route, state_json, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (route) DO UPDATE SET state_json = excluded.state_json,"
        " updated_at = excluded.updated_at",
        (route, json.dumps({"current": memory.as_dict()}), now),
    )
