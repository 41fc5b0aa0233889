"""The wall clock: the one place that reads the time (the core is handed ``now``)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
