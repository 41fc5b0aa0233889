"""How long personal data is kept: ages as the config writes them, and what is due.

Pure rules: ``parse_age`` reads ``30d``, ``6w``, ``13mo``, ``2y`` or ``forever``;
``cutoffs`` turns the settings and ``now`` into the instant before which each
kind of data is due (None: kept for ever). The deletion is the store's
(``ctm_pbx.adapters.store.retention``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

FOREVER = "forever"
_AGE_RE = re.compile(r"^\s*(\d+)\s*([a-z]+)\s*$")
_UNITS = {"d": "days", "w": "weeks", "mo": "months", "y": "years"}
_SPELLED = {word: unit for unit, plural in _UNITS.items() for word in (unit, plural, plural[:-1])}


class AgeError(ValueError):
    """Not an age the config accepts (the message says what is)."""


@dataclass(frozen=True)
class Age:
    """A length of time in calendar terms: months and years count from the date."""

    amount: int
    unit: str  # d | w | mo | y

    def before(self, now: datetime) -> datetime:
        """``now`` minus this age (the same day of an earlier month, clamped to its end)."""
        if self.unit == "d":
            return now - timedelta(days=self.amount)
        if self.unit == "w":
            return now - timedelta(weeks=self.amount)
        months = self.amount * (12 if self.unit == "y" else 1)
        index = now.year * 12 + now.month - 1 - months
        year, month = divmod(index, 12)
        month += 1
        return now.replace(year=year, month=month, day=min(now.day, _days_in(year, month)))

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"

    @property
    def words(self) -> str:
        unit = _UNITS[self.unit]
        return f"{self.amount} {unit[:-1] if self.amount == 1 else unit}"


def parse_age(text: str) -> Age | None:
    """``30d``, ``6w``, ``13mo``, ``2y`` (or ``30 days``, ``13 months``...; at least 1);
    ``forever`` gives None."""
    if text.strip().lower() == FOREVER:
        return None
    match = _AGE_RE.match(text.lower())
    if match is None or match.group(2) not in _SPELLED or int(match.group(1)) < 1:
        raise AgeError(f"expected an age like '30d', '6w', '13mo', '2y' or 'forever', got '{text}'")
    return Age(int(match.group(1)), _SPELLED[match.group(2)])


def _days_in(year: int, month: int) -> int:
    if month == 12:
        return 31
    return (datetime(year, month + 1, 1) - datetime(year, month, 1)).days


@dataclass(frozen=True)
class RetentionSettings:
    """How long each kind of data is kept (None: for ever)."""

    # visits' IP addresses and user agents, leases' client addresses: blanked after
    visitor_details: Age | None = Age(30, "d")
    # visits (their page views) and their leases; visitors left with none: deleted after
    visits: Age | None = Age(13, "mo")
    calls: Age | None = None  # call rows (their legs, recordings and voicemail)
    recordings: Age | None = None  # recording files (and the row's reference to them)
    voicemail: Age | None = None  # voicemail message files (and the row's reference)
    # outbox events done with (delivered, dead, skipped) and the bodies they hold
    outbox: Age | None = Age(30, "d")
    purge: bool = True  # the daemon purges once a day


@dataclass(frozen=True)
class Cutoffs:
    """Data from before these instants is due (None: nothing of that kind is)."""

    visitor_details: datetime | None
    visits: datetime | None
    calls: datetime | None
    recordings: datetime | None
    voicemail: datetime | None
    outbox: datetime | None = None

    @property
    def any(self) -> bool:
        return any(
            at is not None
            for at in (
                self.visitor_details,
                self.visits,
                self.calls,
                self.recordings,
                self.voicemail,
            )
        )


def cutoffs(settings: RetentionSettings, now: datetime) -> Cutoffs:
    """When each kind of data becomes due, as of ``now``."""

    def at(age: Age | None) -> datetime | None:
        return None if age is None else age.before(now)

    return Cutoffs(
        visitor_details=at(settings.visitor_details),
        visits=at(settings.visits),
        calls=at(settings.calls),
        recordings=at(settings.recordings),
        voicemail=at(settings.voicemail),
        outbox=at(settings.outbox),
    )


@dataclass
class PurgeCounts:
    """What a purge removed (or, dry run, would remove)."""

    visits_blanked: int = 0  # visits whose IP address and user agent were blanked
    leases_blanked: int = 0  # leases whose client address was blanked
    visits_deleted: int = 0
    leases_deleted: int = 0
    visitors_deleted: int = 0
    calls_deleted: int = 0
    recordings_deleted: int = 0  # files (and references)
    voicemail_deleted: int = 0
    events_deleted: int = 0  # outbox events done with
    files_missing: int = 0  # references whose file was already gone

    def lines(self) -> list[str]:
        """One line per kind, for the CLI and the log."""
        return [
            f"visits: IP address and user agent blanked: {self.visits_blanked}",
            f"leases: client address blanked: {self.leases_blanked}",
            f"visits deleted: {self.visits_deleted}",
            f"leases deleted: {self.leases_deleted}",
            f"visitors deleted: {self.visitors_deleted}",
            f"calls deleted: {self.calls_deleted}",
            f"recordings deleted: {self.recordings_deleted}",
            f"voicemail messages deleted: {self.voicemail_deleted}",
            f"outbox events deleted: {self.events_deleted}",
        ] + ([f"files already gone: {self.files_missing}"] if self.files_missing else [])

    @property
    def total(self) -> int:
        return (
            self.visits_blanked
            + self.leases_blanked
            + self.visits_deleted
            + self.leases_deleted
            + self.visitors_deleted
            + self.calls_deleted
            + self.recordings_deleted
            + self.voicemail_deleted
            + self.events_deleted
        )
