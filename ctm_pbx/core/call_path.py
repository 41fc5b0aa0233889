"""A call's route path (the ``path`` list of its row) in words, for people."""

from __future__ import annotations


def when(entry: dict) -> str:
    """The entry's ISO time (``at``, or a step's ``started_at``)."""
    return str(entry.get("at") or entry.get("started_at") or "")


def describe(entry: dict) -> str:
    """What happened at this point of the call, without the time."""
    if "failsafe" in entry:
        return f"fail-safe: {entry['failsafe']}"
    if "fallback" in entry:
        to = entry.get("to_route") or entry.get("to_number") or ""
        return f"fallback of {entry.get('from_route')}: {entry['fallback']} {to}".rstrip()
    if "step" in entry:
        rings = ", ".join(f"{r['name']}={r['result']}" for r in entry.get("rings", []))
        rang = entry.get("ring_seconds")
        return (
            f"step {entry['step']} route {entry.get('route') or '-'}: {rings} "
            f"({entry.get('dial_status') or 'no result'}, rang {rang}s)"
        )
    parts = [f"{k.replace('_', ' ')}: {v}" for k, v in entry.items() if k not in ("at",)]
    return "; ".join(parts)
