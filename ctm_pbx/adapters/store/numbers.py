"""The tracking-number inventory table."""

from __future__ import annotations

from collections.abc import Iterable

import sqlite_utils

from ctm_pbx.adapters.store.db import StoreError, atomic
from ctm_pbx.core.inventory import NumberRecord, SyncPlan

_FIELDS = NumberRecord.__dataclass_fields__


def _record(row: dict) -> NumberRecord:
    return NumberRecord(**{k: row[k] for k in _FIELDS})


def get_number(db: sqlite_utils.Database, number: str) -> NumberRecord | None:
    rows = list(db["tracking_numbers"].rows_where("number = ?", [number]))
    return _record(rows[0]) if rows else None


def list_numbers(
    db: sqlite_utils.Database,
    *,
    status: str | None = "active",
    source: str | None = None,
    pool: str | None = None,
    route: str | None = None,
    managed_by: str | None = None,
) -> list[NumberRecord]:
    where, args = [], []
    filters = (
        ("status", status),
        ("source", source),
        ("pool", pool),
        ("route", route),
        ("managed_by", managed_by),
    )
    for col, val in filters:
        if val is not None:
            where.append(f"{col} = ?")
            args.append(val)
    rows = db["tracking_numbers"].rows_where(" AND ".join(where) or None, args, order_by="number")
    return [_record(r) for r in rows]


def all_numbers(db: sqlite_utils.Database) -> dict[str, NumberRecord]:
    return {r.number: r for r in list_numbers(db, status=None)}


_RELEASE = (
    "UPDATE tracking_numbers SET status = 'released', released_at = ?, updated_at = ?"
    " WHERE number = ?"
)
_UPSERT = (
    "INSERT INTO tracking_numbers (number, label, source, pool, route, status, managed_by,"
    " added_at, updated_at, released_at) VALUES (?, ?, ?, ?, ?, 'active', ?, ?, ?, NULL)"
    " ON CONFLICT (number) DO UPDATE SET label = excluded.label, source = excluded.source,"
    " pool = excluded.pool, route = excluded.route, status = 'active',"
    " managed_by = excluded.managed_by, updated_at = excluded.updated_at, released_at = NULL"
)


def add_numbers(db: sqlite_utils.Database, records: Iterable[NumberRecord], *, now: str) -> None:
    """Add numbers in one transaction: all of them or none.

    A released number can be added again (it becomes active with the new
    assignment, keeping its first ``added_at``); an active one is a duplicate.
    """
    records = list(records)
    for rec in records:
        old = get_number(db, rec.number)
        if old is not None and old.status == "active":
            raise StoreError(f"{rec.number} is already in the inventory ({_owner(old)})")
    with atomic(db, "add_numbers"):
        db.conn.executemany(
            _UPSERT,
            [
                (r.number, r.label, r.source, r.pool, r.route, r.managed_by, now, now)
                for r in records
            ],
        )


def update_assignment(
    db: sqlite_utils.Database,
    number: str,
    *,
    source: str | None,
    pool: str | None,
    route: str | None,
    label: str | None,
    now: str,
) -> NumberRecord:
    rec = _editable(db, number)
    with atomic(db, "assign"):
        db.conn.execute(
            "UPDATE tracking_numbers SET source = ?, pool = ?, route = ?, label = ?,"
            " updated_at = ? WHERE number = ?",
            (source, pool, route, rec.label if label is None else label, now, rec.number),
        )
    return get_number(db, number)  # type: ignore[return-value]


def release_number(db: sqlite_utils.Database, number: str, *, now: str) -> NumberRecord:
    rec = _editable(db, number)
    with atomic(db, "release"):
        db.conn.execute(_RELEASE, (now, now, rec.number))
    return get_number(db, number)  # type: ignore[return-value]


def apply_sync(db: sqlite_utils.Database, plan: SyncPlan, *, now: str) -> None:
    """Carry out a ``SyncPlan`` (without conflicts) in one transaction."""
    if plan.conflicts:
        raise StoreError("; ".join(plan.conflicts))
    with atomic(db, "sync"):
        db.conn.executemany(
            _UPSERT,
            [
                (d.number, d.label, d.source, d.pool, d.route, "config", now, now)
                for d in plan.insert + plan.update
            ],
        )
        db.conn.executemany(_RELEASE, [(now, now, number) for number in plan.release])


def _editable(db: sqlite_utils.Database, number: str) -> NumberRecord:
    rec = get_number(db, number)
    if rec is None or rec.status != "active":
        raise StoreError(f"{number} is not an active tracking number")
    if rec.managed_by == "config":
        raise StoreError(
            f"{number} is declared in the config file (tracking_numbers); change it there"
        )
    return rec


def _owner(rec: NumberRecord) -> str:
    return "declared in the config" if rec.managed_by == "config" else "added with the CLI"
