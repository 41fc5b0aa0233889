"""A call's events, as the transports report them (ARI mode's Stasis arguments).

Each carries ``now``: nothing in the core reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ctm_pbx.core.model import NumberInfo


@dataclass(frozen=True)
class Inbound:
    now: datetime
    did: str
    number: NumberInfo | None  # None: not a tracking number we know
    caller_number: str | None = None
    caller_name: str | None = None


@dataclass(frozen=True)
class DialResult:
    """The result of one Dial(): DIALSTATUS, DIALEDTIME_MS, ANSWEREDTIME_MS…"""

    status: str
    dialed_ms: int = 0
    answered_ms: int = 0
    cause: int | None = None
    peer: str = ""  # DIALEDPEERNUMBER: what Dial() connected to, e.g. "phone1"


@dataclass(frozen=True)
class DialReturned:
    """Dial() returned without a connected call; the channel is back in Stasis."""

    now: datetime
    result: DialResult


@dataclass(frozen=True)
class Ended:
    """The caller's channel hung up (reported by the dialplan hangup handler)."""

    now: datetime
    result: DialResult
    failsafe_used: bool = False
    queue: QueueResult | None = None  # when the call went through a queue


@dataclass(frozen=True)
class QueueResult:
    """What Queue() leaves on the caller's channel (QUEUESTATUS, QEHOLDTIME...)."""

    status: str = ""  # TIMEOUT, FULL, JOINEMPTY, LEAVEEMPTY, ... ("" when connected)
    wait_seconds: int = 0
    position: int | None = None  # position at entry (1: first in line)
    agent: str = ""  # MEMBERNAME: the receiving number that answered


@dataclass(frozen=True)
class QueueReturned:
    """Queue() returned without an agent (timeout, full...): the route's fallback runs."""

    now: datetime
    result: QueueResult


@dataclass(frozen=True)
class DigitsEntered:
    """Read() returned: the keys pressed (READSTATUS: OK, TIMEOUT, ERROR...)."""

    now: datetime
    digits: str
    status: str = "OK"


@dataclass(frozen=True)
class Gone:
    """The channel vanished without reporting a result.

    ``caller_left``: we know the caller hung up (a request for the channel got
    404 right after it was in Stasis); otherwise the result is unknown.
    """

    now: datetime
    reason: str
    caller_left: bool = False


@dataclass(frozen=True)
class HandlerFailed:
    """Our own handling raised: the call goes to the fail-safe."""

    now: datetime
    error: str


Event = Inbound | DialReturned | DigitsEntered | QueueReturned | Ended | Gone | HandlerFailed
