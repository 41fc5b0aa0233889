"""Sample calls in the call log (``mode = 'demo'``), and taking them out again."""

from __future__ import annotations

import sqlite_utils

from ctm_pbx.core.demo import DEMO_MODE


def real_calls(db: sqlite_utils.Database) -> int:
    return db.execute("SELECT COUNT(*) FROM calls WHERE mode != ?", [DEMO_MODE]).fetchone()[0]


def seed_demo(db: sqlite_utils.Database, rows: list[dict]) -> int:
    """Insert ``rows`` (oldest first), linking each caller's calls (``previous_call_id``)."""
    last: dict[str, int] = {}
    with db.conn:
        for row in rows:
            caller = row.get("caller_number")
            row = {**row, "previous_call_id": last.get(caller) if caller else None}
            columns = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            cur = db.execute(f"INSERT INTO calls ({columns}) VALUES ({marks})", list(row.values()))
            if caller:
                last[caller] = int(cur.lastrowid or 0)
    return len(rows)


def clear_demo(db: sqlite_utils.Database) -> int:
    with db.conn:
        return db.execute("DELETE FROM calls WHERE mode = ?", [DEMO_MODE]).rowcount
