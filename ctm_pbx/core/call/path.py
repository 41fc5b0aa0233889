"""A call's route path: what happened, in order, as typed entries.

Both modes write the same entries (``CallLedger`` owns them); the call row stores
them as JSON objects (``as_dict``), and ``from_dict`` reads a stored object back,
so the CLI and the dashboard describe a path without knowing its JSON shape.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class _Entry:
    """Keys listed in ``OPTIONAL`` are left out of the stored object when ``None``."""

    OPTIONAL: ClassVar[tuple[str, ...]] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in self.OPTIONAL:
                continue
            out[f.name] = [r.as_dict() for r in value] if f.name == "rings" else value
        return out

    @property
    def when(self) -> str:
        return str(getattr(self, "at", None) or getattr(self, "started_at", None) or "")

    def describe(self) -> str:
        parts = [f"{k.replace('_', ' ')}: {v}" for k, v in self.as_dict().items() if k != "at"]
        return "; ".join(parts)


@dataclass(frozen=True)
class RingEntry(_Entry):
    name: str
    number: str
    result: str


@dataclass(frozen=True)
class DialEntry(_Entry):
    """One ``Dial()`` step: who rang and what each did."""

    step: int
    route: str | None
    dial_status: str
    started_at: str
    ended_at: str
    ring_seconds: float
    rings: tuple[RingEntry, ...]

    def describe(self) -> str:
        rings = ", ".join(f"{r.name}={r.result}" for r in self.rings)
        return (
            f"step {self.step} route {self.route or '-'}: {rings} "
            f"({self.dial_status or 'no result'}, rang {self.ring_seconds}s)"
        )


@dataclass(frozen=True)
class QueueEntry(_Entry):
    """The caller's time in a queue."""

    step: int
    route: str
    queue: str  # CONNECTED, TIMEOUT, FULL, ABANDONED…
    position: int | None
    wait_seconds: float
    agent: str | None
    started_at: str
    ended_at: str

    def describe(self) -> str:
        who = f", agent {self.agent}" if self.agent else ""
        return f"step {self.step} queue {self.route}: {self.queue} after {self.wait_seconds}s{who}"


@dataclass(frozen=True)
class FallbackEntry(_Entry):
    """A route's steps are spent: its fallback runs."""

    OPTIONAL: ClassVar[tuple[str, ...]] = ("to_route", "to_number")
    fallback: str
    from_route: str
    at: str
    to_route: str | None = None
    to_number: str | None = None

    def describe(self) -> str:
        to = self.to_route or self.to_number or ""
        return f"fallback of {self.from_route}: {self.fallback} {to}".rstrip()


@dataclass(frozen=True)
class ScheduleEntry(_Entry):
    """Outside business hours: the route handed over to its ``after_hours``."""

    OPTIONAL: ClassVar[tuple[str, ...]] = ("to_route", "to")
    schedule: str
    open: bool
    from_route: str
    at: str
    to_route: str | None = None
    to: str | None = None


@dataclass(frozen=True)
class GeoEntry(_Entry):
    """A geo route chose by where the caller is."""

    OPTIONAL: ClassVar[tuple[str, ...]] = ("to_route", "to")
    geo: dict[str, Any]
    from_route: str
    at: str
    to_route: str | None = None
    to: str | None = None


@dataclass(frozen=True)
class MenuEntry(_Entry):
    """A key pressed (or not) in an ivr menu."""

    OPTIONAL: ClassVar[tuple[str, ...]] = ("result", "to")
    ivr: str
    key: str | None
    at: str
    result: str | None = None  # "timeout" or "invalid"; None: an option was chosen
    to: str | None = None


@dataclass(frozen=True)
class ZipEntry(_Entry):
    """A ZIP code keyed in for a geo route."""

    OPTIONAL: ClassVar[tuple[str, ...]] = ("valid",)
    zip_prompt: str
    zip: str | None
    at: str
    valid: bool | None = None  # False: not a ZIP we know


@dataclass(frozen=True)
class VoicemailEntry(_Entry):
    voicemail: str  # the greeting
    at: str


@dataclass(frozen=True)
class FailsafeEntry(_Entry):
    """The call went to the dialplan's fail-safe destination."""

    failsafe: str  # why
    at: str

    def describe(self) -> str:
        return f"fail-safe: {self.failsafe}"


@dataclass(frozen=True)
class DefaultDestinationEntry(_Entry):
    """AGI mode: the admin's dialplan took the call to its default destination."""

    default_destination: str  # why
    at: str


PathEntry = (
    DialEntry
    | QueueEntry
    | FallbackEntry
    | ScheduleEntry
    | GeoEntry
    | MenuEntry
    | ZipEntry
    | VoicemailEntry
    | FailsafeEntry
    | DefaultDestinationEntry
)

# the key that tells each kind of stored entry, in the order they are told apart
_BY_KEY: tuple[tuple[str, type[_Entry]], ...] = (
    ("failsafe", FailsafeEntry),
    ("fallback", FallbackEntry),
    ("queue", QueueEntry),
    ("step", DialEntry),
    ("schedule", ScheduleEntry),
    ("geo", GeoEntry),
    ("ivr", MenuEntry),
    ("zip_prompt", ZipEntry),
    ("voicemail", VoicemailEntry),
    ("default_destination", DefaultDestinationEntry),
)


def retimed(entry: PathEntry, at: str) -> PathEntry:
    """The entry as it happened at ``at`` (AGI mode plans entries before they happen)."""
    changes: dict[str, Any] = {"at": at}
    moved: PathEntry = dataclasses.replace(entry, **changes)  # type: ignore[arg-type]
    return moved


@dataclass(frozen=True)
class UnknownEntry(_Entry):
    """A stored object of a shape this code does not know (kept, shown as it is)."""

    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.data)

    @property
    def when(self) -> str:
        return str(self.data.get("at") or self.data.get("started_at") or "")


def from_dict(data: dict[str, Any]) -> PathEntry | UnknownEntry:
    """A stored path object as its entry (``UnknownEntry`` when its shape is not known)."""
    kind = next((cls for key, cls in _BY_KEY if key in data), None)
    if kind is None:
        return UnknownEntry(data)
    names = {f.name for f in dataclasses.fields(kind)}
    values = {k: v for k, v in data.items() if k in names}
    if kind is DialEntry:
        values["rings"] = tuple(
            RingEntry(str(r.get("name", "")), str(r.get("number") or ""), str(r.get("result")))
            for r in data.get("rings") or []
        )
    try:
        return kind(**values)  # type: ignore[return-value]
    except TypeError:  # a key it needs is missing
        return UnknownEntry(data)


def when(data: dict[str, Any]) -> str:
    """A stored entry's ISO time (``at``, or a step's ``started_at``)."""
    return from_dict(data).when


def describe(data: dict[str, Any]) -> str:
    """What happened at this point of the call, in words, without the time."""
    return from_dict(data).describe()
