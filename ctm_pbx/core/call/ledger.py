"""The ledger of one call: its steps, what each ring did, the path, and how it ended.

Both modes keep their calls' books here: ARI mode (``ari_flow``) from Dial() results,
AGI mode (``agi_tracker``) from AMI's ring events. The ledger numbers the steps,
records each step's rings as path entries, remembers who answered first, and turns
all of it into the ``StartStep`` / ``FinishStep`` / ``FinishCall`` records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ctm_pbx.core.call.actions import FinishCall, FinishStep, Outcome, RingResult, StartStep
from ctm_pbx.core.call.path import DialEntry, PathEntry, QueueEntry, RingEntry
from ctm_pbx.core.clock import iso, seconds_between
from ctm_pbx.core.routing import Ring, Step

# a Dial() status as each ring's result
RESULT_BY_STATUS = {
    "ANSWER": "answered",
    "NOANSWER": "no_answer",
    "BUSY": "busy",
    "CONGESTION": "failed",
    "CHANUNAVAIL": "failed",
    "DONTCALL": "failed",
    "TORTURE": "failed",
    "INVALIDARGS": "failed",
    "CANCEL": "abandoned",
    "": "abandoned",
    "UNKNOWN": "unknown",
}


def decide_outcome(
    *, answered: bool, unknown: bool, caller_left: bool, ring_results: list[str]
) -> Outcome:
    """A call's outcome from how it ended and what its rings did (both modes)."""
    if answered:
        return Outcome.ANSWERED
    if unknown:
        return Outcome.UNKNOWN
    if caller_left:
        return Outcome.ABANDONED
    if "no_answer" in ring_results:
        return Outcome.NO_ANSWER
    if "busy" in ring_results:
        return Outcome.BUSY
    return Outcome.FAILED


@dataclass
class OpenStep:
    no: int
    step: Step
    started: datetime


@dataclass
class CallLedger:
    """One call's books. ``current`` is the step ringing now (None between steps)."""

    started: datetime
    step_no: int = 0
    current: OpenStep | None = None
    path: list[PathEntry] = field(default_factory=list)
    ring_results: list[str] = field(default_factory=list)
    answered: tuple[Ring, datetime] | None = None  # the first answer: the call's
    failsafe: bool = False

    def note(self, entry: PathEntry) -> None:
        self.path.append(entry)

    def start_step(self, step: Step, now: datetime) -> StartStep:
        self.step_no += 1
        self.current = OpenStep(self.step_no, step, now)
        return StartStep(self.step_no, step.route, step.rings, iso(now))

    def answer(self, ring: Ring, at: datetime) -> None:
        if self.answered is None:
            self.answered = (ring, at)

    def finish_step(
        self,
        now: datetime,
        *,
        dial_status: str,
        results: tuple[RingResult, ...],
        ring_seconds: float,
        talk_seconds: float,
        cause: int | None,
    ) -> FinishStep:
        """The open step ended: its path entry (one per ring of the step) and record."""
        cur = self.current
        assert cur is not None
        self.ring_results.extend(r.result for r in results)
        rings = tuple(
            RingEntry(ring.name, ring.number, r.result)
            for ring, r in zip(cur.step.rings, results, strict=False)
        )
        self.note(
            DialEntry(
                cur.no,
                cur.step.route or None,
                dial_status,
                iso(cur.started),
                iso(now),
                ring_seconds,
                rings,
            )
        )
        self.current = None
        return FinishStep(cur.no, iso(now), dial_status, results, ring_seconds, talk_seconds, cause)

    def finish_queue_step(
        self,
        now: datetime,
        *,
        status: str,
        results: tuple[RingResult, ...],
        wait_seconds: float,
        position: int | None,
        agent: str | None,
        talk_seconds: float,
    ) -> FinishStep:
        """The caller's time in a queue ended (an agent answered, or Queue() gave up)."""
        cur = self.current
        assert cur is not None
        self.ring_results.extend(r.result for r in results)
        self.note(
            QueueEntry(
                cur.no,
                cur.step.route,
                status,
                position,
                wait_seconds,
                agent,
                iso(cur.started),
                iso(now),
            )
        )
        self.current = None
        return FinishStep(
            cur.no,
            iso(now),
            f"QUEUE_{status}",
            results,
            round(float(wait_seconds), 3),
            talk_seconds,
            None,
        )

    def finish_call(
        self,
        now: datetime,
        cause: int | None,
        *,
        caller_left: bool,
        unknown: bool = False,
        voicemail: bool = False,
        recorded: bool = False,
        notes: str = "",
    ) -> FinishCall:
        """The call's record: outcome, ring and talk time, who answered, the path."""
        answered_at = self.answered[1] if self.answered else None
        outcome = decide_outcome(
            answered=self.answered is not None,
            unknown=unknown,
            caller_left=caller_left and not voicemail,
            ring_results=self.ring_results,
        )
        if outcome is not Outcome.ANSWERED and voicemail:
            outcome = Outcome.VOICEMAIL
        return FinishCall(
            ended_at=iso(now),
            answered_at=iso(answered_at) if answered_at else None,
            outcome=outcome,
            hangup_cause=cause,
            ring_seconds=max(0.0, seconds_between(self.started, answered_at or now)),
            talk_seconds=max(0.0, seconds_between(answered_at, now)) if answered_at else 0.0,
            answered_by=self.answered[0].name if self.answered else None,
            answered_number=(self.answered[0].number or None) if self.answered else None,
            failsafe=self.failsafe,
            path=tuple(e.as_dict() for e in self.path),
            notes=notes,
            recorded=recorded and self.answered is not None,
            voicemail=voicemail,
        )
