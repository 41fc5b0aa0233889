"""Timestamps as the store keeps them: ISO 8601, UTC, millisecond precision."""

from __future__ import annotations

from datetime import UTC, datetime

_last: tuple[datetime | None, str] = (None, "")  # the latest ``iso``: a request asks ~10 times


def iso(dt: datetime) -> str:
    """``2026-11-28T00:01:19.123Z`` (sortable as text)."""
    global _last
    last, text = _last
    if dt is last:
        return text
    utc = dt if dt.tzinfo is UTC else dt.astimezone(UTC)
    text = utc.isoformat(timespec="milliseconds")[:-6] + "Z"
    _last = (dt, text)
    return text


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def seconds_between(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds(), 3)
