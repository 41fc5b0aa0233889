"""AGI mode: follow a call from Asterisk's events (AMI) and complete its row.

The admin's dialplan runs the ``Dial()`` steps of an ``AgiPlan``; Asterisk
reports each ring (``DialBegin``/``DialEnd``) and the caller's hangup. This
state machine turns those events into the same step and call records as ARI
mode (``StartStep``, ``FinishStep``, ``FinishCall``), kept by the same
``CallLedger``. Rings are matched to the plan by their dial string; a ``Dial()``
ctm-pbx did not plan (the admin's default destination) is recorded as it happens.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from ctm_pbx.core.call.actions import Action, FinishStep, RingResult, StartStep
from ctm_pbx.core.call.agi_plan import AgiPlan, AgiStatus
from ctm_pbx.core.call.ledger import RESULT_BY_STATUS, CallLedger
from ctm_pbx.core.call.path import DefaultDestinationEntry, retimed
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
class _Dial:
    """The rings of the ``Dial()`` ringing now (the ledger's open step)."""

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
    current: _Dial | None = None
    caller_left: bool = False
    last_status: str = ""  # dial status of the last finished step
    done: bool = False
    gave_up: bool = False  # ctm-pbx did not answer in time: the dialplan went on alone
    adopted: bool = False  # met again after a restart: what happened meanwhile is unknown
    adopted_note: str = "adopted after a ctm-pbx restart"
    books: CallLedger = field(init=False)
    _transitions_taken: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.books = CallLedger(self.started)
        if self.plan.status != AgiStatus.OK:
            self.books.note(DefaultDestinationEntry(self.plan.reason, iso(self.started)))

    @property
    def failsafe(self) -> bool:
        """The call went to the dialplan's default destination, not to its route."""
        return self.gave_up or self.plan.status != AgiStatus.OK

    @property
    def path(self) -> list[dict]:
        """The path so far, as the call row stores it."""
        return [e.as_dict() for e in self.books.path]

    def give_up(self, now: datetime, reason: str) -> None:
        """The AGI answer did not reach the dialplan: nothing it dials was planned."""
        if self.gave_up or self.done:
            return
        self.gave_up = True
        self.next_planned = len(self.plan.steps)
        self.books.note(DefaultDestinationEntry(reason, iso(now)))

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
                self._sync_open_step()
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
        start = self.books.start_step(step, ev.now)
        legs = [_Leg(r) for r in step.rings]
        self.current = _Dial(start.step, step, ev.now, legs, planned)
        next(g for g in legs if _same(g.ring, key)).dest_id = ev.dest_id
        actions.append(start)
        return actions

    def _skipped(self, index: int, now: datetime) -> list[Action]:
        self._transitions_up_to(index, now)
        self.next_planned = index + 1
        step = self.plan.steps[index]
        start = self.books.start_step(step, now)
        self.current = _Dial(start.step, step, now, [_Leg(r) for r in step.rings], True)
        return [start, self._finish_step(now, None)]

    def _ended(self, ev: DialEnded) -> list[Action]:
        cur = self.current
        leg = cur.leg_for(ev.dest_id) if cur else None
        if cur is None or leg is None:
            return []
        leg.status = ev.status or "UNKNOWN"
        if ev.status == "ANSWER" and cur.answered is None:
            cur.answered, cur.answered_at = leg, ev.now
            self.books.answer(leg.ring, ev.now)  # the call's: its first answer (the route's)
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
        elif seen and (self.books.step_no == 0 or self.last_status == "CANCEL"):
            self.caller_left = True  # hung up before anything rang, or while it rang
        books = self.books
        spent = self.next_planned >= len(self.plan.steps)
        if not self.gave_up and books.answered is None and spent:
            self._transitions_up_to(len(self.plan.steps), now)  # the route's final fallback
        self.done = True
        books.failsafe = self.failsafe
        finish = books.finish_call(
            now,
            cause,
            caller_left=self.caller_left,
            unknown=bool(lost or self.adopted) and books.answered is None,
            notes=lost or (self.adopted_note if self.adopted else ""),
        )
        actions.append(finish)
        return actions

    # -- helpers -----------------------------------------------------------------

    def _transitions_up_to(self, index: int, now: datetime) -> None:
        """Path entries of the fallbacks taken before planned step ``index``."""
        for i, (at, entry) in enumerate(self.plan.transitions):
            if at <= index and i not in self._transitions_taken:
                self._transitions_taken.add(i)
                self.books.note(retimed(entry, iso(now)))

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
        self.last_status = status
        self.current = None
        return self.books.finish_step(
            now,
            dial_status=status,
            results=tuple(results),
            ring_seconds=ring_s,
            talk_seconds=talk,
            cause=cause,
        )

    def _sync_open_step(self) -> None:
        """An unplanned Dial() rang one more destination: the ledger's step has it too."""
        cur, open_step = self.current, self.books.current
        if cur is not None and open_step is not None:
            open_step.step = replace(cur.step, rings=tuple(leg.ring for leg in cur.legs))


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
