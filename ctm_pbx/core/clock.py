"""Timestamps as the store keeps them: ISO 8601, UTC, millisecond precision."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(dt: datetime) -> str:
    """``2026-11-28T00:01:19.123Z`` (sortable as text)."""
    if dt.tzinfo is not UTC:
        dt = dt.astimezone(UTC)
    return dt.isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def seconds_between(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds(), 3)
