"""AGI mode: follow a call from Asterisk's events (AMI) and complete its row.

The admin's dialplan runs the ``Dial()`` steps of an ``AgiPlan``; Asterisk
reports each ring (``DialBegin``/``DialEnd``) and the caller's hangup. This
state machine turns those events into the same step and call records as ARI
mode (``StartStep``, ``FinishStep``, ``FinishCall``). Rings are matched to the
plan by their dial string; a ``Dial()`` ctm-pbx did not plan (the admin's
default destination) is recorded as it happens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ctm_pbx.core.agi_plan import AgiPlan, AgiStatus
from ctm_pbx.core.callflow import (
    RESULT_BY_STATUS,
    Action,
    FinishCall,
    FinishStep,
    RingResult,
    StartStep,
    decide_outcome,
)
from ctm_pbx.core.clock import iso, seconds_between
from ctm_pbx.core.routing import Ring, Step

# ---- events (from AMI) ----------------------------------------------------------


@dataclass(frozen=True)
class DialBegan:
    """``DialBegin``: the caller's ``Dial()`` started ringing one destination."""

    now: datetime
    dest_id: str  # DestUniqueid
    dest_channel: str  # DestChannel, e.g. PJSIP/phone1-00000004
    dial_string: str  # DialString, e.g. phone1


@dataclass(frozen=True)
class DialEnded:
    """``DialEnd``: one destination's result (ANSWER, BUSY, NOANSWER, CANCEL...)."""

    now: datetime
    dest_id: str
    status: str


@dataclass(frozen=True)
class HungUp:
    """``Hangup`` of the caller's channel."""

    now: datetime
    cause: int | None


@dataclass(frozen=True)
class ChannelLost:
    """The caller's channel is gone and its events were missed (AMI was away)."""

    now: datetime
    reason: str


TrackerEvent = DialBegan | DialEnded | HungUp | ChannelLost

# statuses by how much they say about the step, for the step's dial status
_STATUS_RANK = ("ANSWER", "NOANSWER", "BUSY", "CONGESTION", "CHANUNAVAIL", "CANCEL")


@dataclass
class _Leg:
    ring: Ring
    dest_id: str | None = None
    status: str | None = None  # DialEnd status; None: still ringing (or never began)


@dataclass
class _OpenStep:
    no: int
    step: Step
    started: datetime
    legs: list[_Leg]
    planned: bool
    answered: _Leg | None = None
    answered_at: datetime | None = None

    def leg_for(self, dest_id: str) -> _Leg | None:
        return next((leg for leg in self.legs if leg.dest_id == dest_id), None)

    def waiting(self) -> bool:
        return any(leg.dest_id is not None and leg.status is None for leg in self.legs)


@dataclass
class AgiCallTracker:
    """One AGI-mode call, from its plan to its hangup."""

    plan: AgiPlan
    started: datetime
    next_planned: int = 0
    step_no: int = 0
    current: _OpenStep | None = None
    path: list[dict] = field(default_factory=list)
    ring_results: list[str] = field(default_factory=list)
    answered: tuple[Ring, datetime] | None = None
    caller_left: bool = False
    last_status: str = ""  # dial status of the last finished step
    done: bool = False

    def __post_init__(self) -> None:
        if self.plan.status != AgiStatus.OK:
            self.path.append({"default_destination": self.plan.reason, "at": iso(self.started)})

    gave_up: bool = False  # ctm-pbx did not answer in time: the dialplan went on alone
    adopted: bool = False  # met again after a restart: what happened meanwhile is unknown
    adopted_note: str = "adopted after a ctm-pbx restart"
    _transitions_taken: set[int] = field(default_factory=set)

    @property
    def failsafe(self) -> bool:
        """The call went to the dialplan's default destination, not to its route."""
        return self.gave_up or self.plan.status != AgiStatus.OK

    def give_up(self, now: datetime, reason: str) -> None:
        """The AGI answer did not reach the dialplan: nothing it dials was planned."""
        if self.gave_up or self.done:
            return
        self.gave_up = True
        self.next_planned = len(self.plan.steps)
        self.path.append({"default_destination": reason, "at": iso(now)})

    def lose_sight(self, note: str) -> None:
        """Events of the call may have been missed (AMI was down): as for an adopted call,
        an end without an answer seen is unknown, not abandoned."""
        self.adopted = True
        self.adopted_note = note

    def handle(self, event: TrackerEvent) -> list[Action]:
        if self.done:
            return []
        if isinstance(event, DialBegan):
            return self._began(event)
        if isinstance(event, DialEnded):
            return self._ended(event)
        if isinstance(event, HungUp):
            return self._hung_up(event.now, event.cause)
        if isinstance(event, ChannelLost):
            return self._hung_up(event.now, None, lost=event.reason)
        raise TypeError(f"unknown event {event!r}")

    # -- handlers ----------------------------------------------------------------

    def _began(self, ev: DialBegan) -> list[Action]:
        key = _dial_key(ev.dest_channel, ev.dial_string)
        cur = self.current
        if cur is not None and cur.answered is not None:
            # the answered Dial() returned and the dialplan dials again (Dial()'s g
            # option, a timeout's T extension): that conversation ended here
            return [self._finish_step(ev.now, None), *self._new_step(ev, key)]
        if cur is not None and not cur.waiting() and cur.answered is None:
            cur = None  # every ring of the last Dial() ended: this is a new Dial()
        if cur is not None:
            leg = next((g for g in cur.legs if g.dest_id is None and _same(g.ring, key)), None)
            if leg is not None:
                leg.dest_id = ev.dest_id
                return []
            if not cur.planned and cur.answered is None:
                ring = Ring(name=key, number="", dial_string=key)
                cur.legs.append(_Leg(ring, ev.dest_id))
                return [StartStep(cur.no, "", (ring,), iso(ev.now))]
        return self._new_step(ev, key)

    def _new_step(self, ev: DialBegan, key: str) -> list[Action]:
        actions: list[Action] = []
        steps = self.plan.steps
        found = next(
            (i for i in range(self.next_planned, len(steps)) if _has(steps[i], key)),
            None,
        )
        if found is not None:
            # planned steps before it rang nobody (Dial() could not create a channel)
            for i in range(self.next_planned, found):
                actions += self._skipped(i, ev.now)
            self._transitions_up_to(found, ev.now)
            step, planned = steps[found], True
            self.next_planned = found + 1
        else:
            ring = Ring(name=key, number="", dial_string=key)
            step, planned = Step("", (ring,), 0), False
        self.step_no += 1
        legs = [_Leg(r) for r in step.rings]
        self.current = _OpenStep(self.step_no, step, ev.now, legs, planned)
        next(g for g in legs if _same(g.ring, key)).dest_id = ev.dest_id
        actions.append(StartStep(self.step_no, step.route, step.rings, iso(ev.now)))
        return actions

    def _skipped(self, index: int, now: datetime) -> list[Action]:
        self._transitions_up_to(index, now)
        self.next_planned = index + 1
        self.step_no += 1
        step = self.plan.steps[index]
        self.current = _OpenStep(self.step_no, step, now, [_Leg(r) for r in step.rings], True)
        return [
            StartStep(self.step_no, step.route, step.rings, iso(now)),
            self._finish_step(now, None),
        ]

    def _ended(self, ev: DialEnded) -> list[Action]:
        cur = self.current
        leg = cur.leg_for(ev.dest_id) if cur else None
        if cur is None or leg is None:
            return []
        leg.status = ev.status or "UNKNOWN"
        if ev.status == "ANSWER" and cur.answered is None:
            cur.answered, cur.answered_at = leg, ev.now
            if self.answered is None:  # the call's: its first answer (the route's)
                self.answered = (leg.ring, ev.now)
            return []  # the step ends with the call: its talk time is not known yet
        if cur.answered is None and not cur.waiting():
            return [self._finish_step(ev.now, None)]
        return []

    def _hung_up(self, now: datetime, cause: int | None, lost: str = "") -> list[Action]:
        actions: list[Action] = []
        cur = self.current
        seen = not (lost or self.adopted)  # we saw the hangup itself
        if cur is not None:
            if cur.answered is None and seen:
                self.caller_left = True  # the caller hung up while phones rang
            actions.append(self._finish_step(now, cause, hangup=seen))
        elif seen and (self.step_no == 0 or self.last_status == "CANCEL"):
            self.caller_left = True  # hung up before anything rang, or while it rang
        if not self.gave_up and self.answered is None and self.next_planned >= len(self.plan.steps):
            self._transitions_up_to(len(self.plan.steps), now)  # the route's final fallback
        self.done = True
        started = self.started
        answered_at = self.answered[1] if self.answered else None
        outcome = decide_outcome(
            answered=self.answered is not None,
            unknown=bool(lost or self.adopted) and self.answered is None,
            caller_left=self.caller_left,
            ring_results=self.ring_results,
        )
        actions.append(
            FinishCall(
                ended_at=iso(now),
                answered_at=iso(answered_at) if answered_at else None,
                outcome=outcome,
                hangup_cause=cause,
                ring_seconds=max(0.0, seconds_between(started, answered_at or now)),
                talk_seconds=max(0.0, seconds_between(answered_at, now)) if answered_at else 0.0,
                answered_by=self.answered[0].name if self.answered else None,
                answered_number=(self.answered[0].number or None) if self.answered else None,
                failsafe=self.failsafe,
                path=tuple(self.path),
                notes=lost or (self.adopted_note if self.adopted else ""),
            )
        )
        return actions

    # -- helpers -----------------------------------------------------------------

    def _transitions_up_to(self, index: int, now: datetime) -> None:
        """Path entries of the fallbacks taken before planned step ``index``."""
        for i, (at, entry) in enumerate(self.plan.transitions):
            if at <= index and i not in self._transitions_taken:
                self._transitions_taken.add(i)
                self.path.append({**entry, "at": iso(now)})

    def _finish_step(self, now: datetime, cause: int | None, *, hangup: bool = False) -> FinishStep:
        cur = self.current
        assert cur is not None
        results = []
        for leg in cur.legs:
            if cur.answered is not None:
                result = "answered" if leg is cur.answered else "cancelled"
            elif leg.dest_id is None:
                result = "failed"  # Dial() did not ring it (no such endpoint, unreachable)
            elif leg.status is None:
                result = "abandoned" if hangup else "unknown"
            else:
                result = RESULT_BY_STATUS.get(leg.status, "failed")
            results.append(RingResult(leg.ring.name, result))
        statuses = [leg.status or ("CANCEL" if hangup else "") for leg in cur.legs]
        status = next((s for s in _STATUS_RANK if s in statuses), "CHANUNAVAIL")
        ring_end = cur.answered_at or now
        ring_s = round(max(0.0, seconds_between(cur.started, ring_end)), 3)
        talk = round(seconds_between(cur.answered_at, now), 3) if cur.answered_at else 0.0
        self.ring_results.extend(r.result for r in results)
        self.last_status = status
        self.path.append(
            {
                "step": cur.no,
                "route": cur.step.route or None,
                "dial_status": status,
                "started_at": iso(cur.started),
                "ended_at": iso(now),
                "ring_seconds": ring_s,
                "rings": [
                    {"name": leg.ring.name, "number": leg.ring.number, "result": r.result}
                    for leg, r in zip(cur.legs, results, strict=True)
                ],
            }
        )
        self.current = None
        return FinishStep(
            step=cur.no,
            ended_at=iso(now),
            dial_status=status,
            results=tuple(results),
            ring_seconds=ring_s,
            talk_seconds=talk,
            cause=cause,
        )


def _dial_key(dest_channel: str, dial_string: str) -> str:
    """``PJSIP/phone1`` from DestChannel ``PJSIP/phone1-00000004`` and DialString ``phone1``."""
    tech = dest_channel.split("/", 1)[0]
    return f"{tech}/{dial_string}"


def _same(ring: Ring, key: str) -> bool:
    tech, _, resource = ring.dial_string.partition("/")
    k_tech, _, k_resource = key.partition("/")
    return tech.lower() == k_tech.lower() and resource == k_resource


def _has(step: Step, key: str) -> bool:
    return any(_same(r, key) for r in step.rings)
