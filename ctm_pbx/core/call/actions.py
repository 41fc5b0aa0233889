"""What a call's state machines ask for: channel moves (ARI mode) and call-log records
(both modes: ``StartCall``, ``StartStep``, ``FinishStep``, ``FinishCall``…)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ctm_pbx.core.clock import iso
from ctm_pbx.core.geo import Location, locate_number
from ctm_pbx.core.model import NumberInfo
from ctm_pbx.core.routing import Ring, RouteMemory


class Outcome(StrEnum):
    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    ABANDONED = "abandoned"
    UNKNOWN = "unknown"  # the channel vanished while ctm-pbx was down and left no result
    VOICEMAIL = "voicemail"  # nobody answered; the caller reached voicemail


@dataclass(frozen=True)
class StartCall:
    started_at: str
    tracking_number: str
    caller_number: str | None
    caller_name: str | None
    source: str | None
    pool: str | None
    route: str | None
    location: Location | None = None  # from the caller's number (area code)


def start_call(
    now: datetime,
    did: str,
    number: NumberInfo | None,
    caller_number: str | None,
    caller_name: str | None,
    route: str | None = None,
) -> StartCall:
    """The row a call starts with, in every mode: what the inventory knows of the
    number dialled (``did`` when it knows nothing) and where the caller's number is.
    ``route``: the route the call takes, when it is not the number's own."""
    return StartCall(
        started_at=iso(now),
        tracking_number=number.number if number else did,
        caller_number=caller_number,
        caller_name=caller_name,
        source=number.source if number else None,
        pool=number.pool if number else None,
        route=route if route is not None else (number.route if number else None),
        location=locate_number(caller_number),
    )


@dataclass(frozen=True)
class StartStep:
    step: int
    route: str
    rings: tuple[Ring, ...]
    started_at: str


@dataclass(frozen=True)
class RingResult:
    name: str
    result: str


@dataclass(frozen=True)
class FinishStep:
    step: int
    ended_at: str
    dial_status: str
    results: tuple[RingResult, ...]
    ring_seconds: float
    talk_seconds: float
    cause: int | None


@dataclass(frozen=True)
class DialStep:
    """Continue the channel into the dialplan's Dial() with these arguments."""

    dial_args: str
    record: bool = False  # MixMonitor the call first (both sides, while connected)


@dataclass(frozen=True)
class TakeMessage:
    """Continue the channel to voicemail: the greeting, then the caller's message."""

    greeting: str
    max_seconds: int


@dataclass(frozen=True)
class CollectDigits:
    """Continue the channel into the dialplan's Read(): play ``prompts``, take keys."""

    prompts: tuple[str, ...]
    max_digits: int
    timeout: int
    pound_ends: bool = True  # '#' ends the input (a ZIP); else '#' is a key (menus)

    def read_args(self) -> str:
        """Read()'s arguments after the variable name (one attempt: ctm-pbx counts them)."""
        options = "" if self.pound_ends else "t()"  # t(): no terminator digit
        return f"{'&'.join(self.prompts)},{self.max_digits},{options},1,{self.timeout}"


@dataclass(frozen=True)
class EnterQueue:
    """Continue the channel into the dialplan's Queue()."""

    queue: str  # the Asterisk queue
    priority: int  # QUEUE_PRIO: higher is served first
    max_wait: int  # seconds before Queue() gives up (TIMEOUT)
    whisper: str | None = None  # prompt the answering agent hears first
    record: bool = False

    def extension(self) -> str:
        return f"Q{self.queue}.{self.priority}.{self.max_wait}"


@dataclass(frozen=True)
class RecordQueue:
    """The queue part of the call: for the call row."""

    queue: str
    status: str  # CONNECTED, TIMEOUT, FULL, ABANDONED, ...
    wait_seconds: float
    position: int | None
    agent: str | None


@dataclass(frozen=True)
class RecordInput:
    """What the caller keyed in so far (menu keys, a ZIP), and where that puts them."""

    digits: str
    location: Location | None


@dataclass(frozen=True)
class EndCall:
    """Continue the channel to a final outcome: ``busy`` or ``hangup``."""

    how: str


@dataclass(frozen=True)
class SendToFailsafe:
    reason: str


@dataclass(frozen=True)
class RememberRoute:
    route: str
    memory: RouteMemory


@dataclass(frozen=True)
class FinishCall:
    ended_at: str
    answered_at: str | None
    outcome: Outcome
    hangup_cause: int | None
    ring_seconds: float
    talk_seconds: float
    answered_by: str | None
    answered_number: str | None
    failsafe: bool
    path: tuple[dict, ...]
    notes: str = ""
    recorded: bool = False  # a recording of the conversation was started
    voicemail: bool = False  # the caller was put through to voicemail


Action = (
    StartCall
    | StartStep
    | FinishStep
    | DialStep
    | CollectDigits
    | EnterQueue
    | TakeMessage
    | RecordQueue
    | RecordInput
    | EndCall
    | SendToFailsafe
    | RememberRoute
    | FinishCall
)
