"""The per-call state machine of ARI mode: events in, actions out.

The daemon translates ARI events into these events and carries out the
actions (ARI requests, store writes). Nothing here does I/O or reads a clock:
every event carries ``now``.

How a call goes (see dialplan/ctm-pbx.conf):

    Inbound -> Dial(step 1) -> DialReturned -> Dial(step 2) ... -> fallback
                                         \\-> Ended (answered, hung up, abandoned)

A call ends with exactly one ``FinishCall``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from ctm_pbx.core.clock import iso, seconds_between
from ctm_pbx.core.geo import Location, ZipLookup, locate_number, locate_zip, valid_zip
from ctm_pbx.core.model import Config, Fallback, FallbackKind, Route, RouteType
from ctm_pbx.core.route_select import select_route
from ctm_pbx.core.routing import (
    Plan,
    Ring,
    RouteMemory,
    RoutingError,
    Step,
    plan_fallback,
    plan_route,
    ring_for,
)


class Phase(StrEnum):
    ROUTING = "routing"  # in Stasis: we decide
    DIALING = "dialing"  # in the dialplan's Dial()
    COLLECTING = "collecting"  # in the dialplan's Read(): a menu or a ZIP prompt
    QUEUED = "queued"  # in the dialplan's Queue(): waiting for an agent
    ENDING = "ending"  # sent to busy/hangup
    VOICEMAIL = "voicemail"  # leaving a message
    FAILSAFE = "failsafe"  # sent to the dialplan fail-safe
    DONE = "done"


class Outcome(StrEnum):
    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    ABANDONED = "abandoned"
    UNKNOWN = "unknown"  # the channel vanished while ctm-pbx was down and left no result
    VOICEMAIL = "voicemail"  # nobody answered; the caller reached voicemail


# ---- events ---------------------------------------------------------------


@dataclass(frozen=True)
class NumberInfo:
    """What the inventory knows of the dialled tracking number."""

    number: str
    source: str | None
    pool: str | None
    route: str | None


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


# ---- actions --------------------------------------------------------------


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

FAILSAFE_RING = Ring(name="failsafe", number="", dial_string="")


class ProtocolError(RuntimeError):
    """An event that cannot happen in the current phase."""


@dataclass
class CallFlow:
    """One call's routing state."""

    config: Config
    memory_of: dict[str, RouteMemory] = field(default_factory=dict)
    phase: Phase = Phase.ROUTING
    started: datetime | None = None
    route: str | None = None
    pending: list[Step] = field(default_factory=list)
    step_no: int = 0
    current: Step | None = None
    current_started: datetime | None = None
    visited: set[str] = field(default_factory=set)
    path: list[dict] = field(default_factory=list)
    ring_results: list[str] = field(default_factory=list)
    answered: tuple[Ring, datetime] | None = None
    failsafe: bool = False
    fallback_spent: bool = False  # a number fallback is the last resort of a route
    start_record: StartCall | None = None
    start_emitted: bool = False
    location: Location | None = None
    zip_lookup: ZipLookup | None = None  # the adapter's ZIP dataset (for geo ZIP prompts)
    menu: Route | None = None  # the ivr/geo route waiting for keys
    menu_attempts: int = 0
    asked: set[str] = field(default_factory=set)  # geo routes that asked for a ZIP
    inputs: list[str] = field(default_factory=list)
    caller_answered: bool = False  # a menu answered the caller: Dial() must play ringback
    recorded: bool = False
    voicemail_taken: bool = False

    # -- entry points --------------------------------------------------------

    def handle(self, event: Event) -> list[Action]:
        if self.phase is Phase.DONE:
            return []
        if isinstance(event, Inbound):
            return self._inbound(event)
        if isinstance(event, DialReturned):
            return self._dial_returned(event)
        if isinstance(event, DigitsEntered):
            return self._digits(event)
        if isinstance(event, QueueReturned):
            return self._queue_returned(event)
        if isinstance(event, Ended):
            return self._ended(event)
        if isinstance(event, Gone):
            return self._gone(event)
        if isinstance(event, HandlerFailed):
            return self._handler_failed(event)
        raise TypeError(f"unknown event {event!r}")

    @classmethod
    def resume(
        cls,
        config: Config,
        *,
        started: datetime,
        route: str | None,
        step_no: int,
        open_step: Step | None,
        open_step_started: datetime | None,
        path: list[dict],
        failsafe: bool,
    ) -> CallFlow:
        """A flow rebuilt from the store after a daemon restart (the call is in Dial())."""
        flow = cls(config=config, started=started, route=route, step_no=step_no, path=path)
        flow.current, flow.current_started = open_step, open_step_started
        flow.failsafe = failsafe
        flow.phase = Phase.FAILSAFE if failsafe else Phase.DIALING
        if route:
            flow.visited.add(route)
        return flow

    # -- handlers --------------------------------------------------------------

    def _inbound(self, ev: Inbound) -> list[Action]:
        if self.started is not None:
            raise ProtocolError("a second Inbound for the same call")
        self.started = ev.now
        info = ev.number
        self.route = info.route if info else None
        self.location = locate_number(ev.caller_number)
        start = StartCall(
            started_at=iso(ev.now),
            tracking_number=info.number if info else ev.did,
            caller_number=ev.caller_number,
            caller_name=ev.caller_name,
            source=info.source if info else None,
            pool=info.pool if info else None,
            route=self.route,
            location=self.location,
        )
        self.start_record = start
        actions = self._route_inbound(ev, start)
        self.start_emitted = True
        return actions

    def _route_inbound(self, ev: Inbound, start: StartCall) -> list[Action]:
        info = ev.number
        if info is None:
            return [start, *self._to_failsafe(ev.now, f"{ev.did} is not a tracking number")]
        if self.route is None:
            return [start, *self._to_failsafe(ev.now, f"{info.number} has no route")]
        route = self.config.routes.get(self.route)
        if route is None:
            return [start, *self._to_failsafe(ev.now, f"route '{self.route}' is not configured")]
        self.visited.add(route.name)
        return [start, *self._enter(route.name, ev.now)]

    def _dial_returned(self, ev: DialReturned) -> list[Action]:
        if self.phase is not Phase.DIALING:
            raise ProtocolError(f"Dial() returned in phase {self.phase.value}")
        actions: list[Action] = [self._finish_step(ev.now, ev.result)]
        self.phase = Phase.ROUTING
        if self.pending:
            return actions + self._dial_next(ev.now)
        return actions + self._fallback(ev.now)

    def _ended(self, ev: Ended) -> list[Action]:
        actions: list[Action] = []
        res = ev.result
        caller_left = self.phase in (Phase.ROUTING, Phase.COLLECTING) or res.status in (
            "CANCEL",
            "",
        )
        if self.phase is Phase.QUEUED and self.current is not None:
            return self._ended_in_queue(ev)
        if ev.failsafe_used and not self.failsafe:
            # the dialplan sent the call to its fail-safe while ctm-pbx was away
            if self.current is not None:
                actions.append(self._finish_step(ev.now, DialResult(status="UNKNOWN")))
            actions.extend(self._open_failsafe(ev.now, "dialplan fail-safe (ctm-pbx away)"))
        if self.current is not None:
            actions.append(self._finish_step(ev.now, res))
        actions.append(self._finish_call(ev.now, res.cause, caller_left=caller_left))
        return actions

    def _gone(self, ev: Gone) -> list[Action]:
        actions: list[Action] = []
        status = "" if ev.caller_left or self.phase is Phase.ROUTING else "UNKNOWN"
        if self.current is not None:
            actions.append(self._finish_step(ev.now, DialResult(status=status)))
        caller_left = status == ""
        actions.append(
            self._finish_call(
                ev.now, None, caller_left=caller_left, notes=ev.reason, unknown=not caller_left
            )
        )
        return actions

    def _handler_failed(self, ev: HandlerFailed) -> list[Action]:
        actions: list[Action] = []
        if self.start_record is not None and not self.start_emitted:
            actions.append(self.start_record)  # the failure came before the row was asked for
            self.start_emitted = True
        return actions + self._to_failsafe(ev.now, f"handler error: {ev.error}")

    # -- helpers -----------------------------------------------------------------

    def _remember(self, route: str, plan: Plan) -> list[Action]:
        if plan.memory is None:
            return []
        self.memory_of[route] = plan.memory
        return [RememberRoute(route, plan.memory)]

    def _take_plan(self, plan: Plan, now: datetime) -> list[Action]:
        steps = [replace(s, options=self._dial_options(s)) for s in plan.steps]
        self.pending = steps
        return self._dial_next(now)

    def _source(self) -> str | None:
        return self.start_record.source if self.start_record else None

    def _dial_options(self, step: Step) -> str:
        options = step.options
        if self.caller_answered:  # the caller hears silence unless Dial() makes ringback
            options += "r"
        route = self.config.routes.get(step.route)
        whisper = route.whisper_for(self._source()) if route else None
        if whisper:  # played to whoever answers, before the caller is connected
            options += f"U(ctm-whisper^{whisper})"
        return options

    def _records(self, route_name: str) -> bool:
        route = self.config.routes.get(route_name)
        return bool(route and route.record)

    def _dial_next(self, now: datetime) -> list[Action]:
        step = self.pending.pop(0)
        self.step_no += 1
        self.current, self.current_started = step, now
        self.phase = Phase.DIALING
        record = self._records(step.route)
        self.recorded |= record
        return [
            StartStep(self.step_no, step.route, step.rings, iso(now)),
            DialStep(step.dial_args(), record),
        ]

    def _fallback(self, now: datetime) -> list[Action]:
        if self.fallback_spent:
            self.phase = Phase.ENDING
            return [EndCall("hangup")]
        route = self.config.routes.get(self.route or "")
        if route is None:
            return self._to_failsafe(now, f"route '{self.route}' is not configured")
        try:
            action = plan_fallback(
                route.fallback,
                self.config,
                from_route=route.name,
                visited=frozenset(self.visited),
                memory_of=self.memory_of,
            )
        except RoutingError as exc:
            return self._to_failsafe(now, str(exc))
        entry: dict[str, str | None] = {
            "fallback": action.kind.value,
            "from_route": route.name,
            "at": iso(now),
        }
        if action.kind is FallbackKind.ROUTE:
            entry["to_route"] = action.route
            self.path.append(entry)
            self.visited.add(action.route or "")
            return self._enter(action.route or "", now)
        if action.kind is FallbackKind.NUMBER:
            entry["to_number"] = route.fallback.value
            self.path.append(entry)
            self.fallback_spent = True
            return self._take_plan(action.plan, now)  # type: ignore[arg-type]
        self.path.append(entry)
        if action.kind is FallbackKind.VOICEMAIL:
            return self._voicemail(route.fallback.value or "", now)
        self.phase = Phase.ENDING
        return [EndCall(action.kind.value)]

    def _voicemail(self, greeting: str, now: datetime) -> list[Action]:
        self.phase = Phase.VOICEMAIL
        self.voicemail_taken = True
        self.path.append({"voicemail": greeting, "at": iso(now)})
        return [TakeMessage(greeting, self.config.asterisk.recordings.voicemail_max_seconds)]

    def _enter(self, name: str, now: datetime) -> list[Action]:
        """Run route ``name``, or the route its schedule or geo rules hand over to."""
        try:
            sel = select_route(
                self.config,
                name,
                now=now,
                where=self.location,
                visited=frozenset(self.visited),
                asked=frozenset(self.asked),
            )
        except RoutingError as exc:
            return self._to_failsafe(now, str(exc))
        self.path.extend(sel.path)
        self.visited |= sel.visited
        if sel.route is None:
            self.route = sel.from_route
            return self._final(sel.fallback or Fallback(FallbackKind.HANGUP), now)
        self.route = sel.route.name
        if sel.route.type is RouteType.IVR:
            return self._menu(sel.route, now)
        if sel.route.type is RouteType.GEO:  # it asks for a ZIP code first
            return self._menu(sel.route, now)
        if sel.route.type is RouteType.QUEUE:
            return self._enter_queue(sel.route, now)
        plan = plan_route(sel.route, self.config, self.memory_of.get(sel.route.name))
        return [*self._remember(sel.route.name, plan), *self._take_plan(plan, now)]

    def _final(self, fallback: Fallback, now: datetime) -> list[Action]:
        """A handover straight to a number, busy or hangup (after hours, no geo match)."""
        if fallback.kind is FallbackKind.ROUTE:
            return self._enter(fallback.value or "", now)
        if fallback.kind is FallbackKind.NUMBER:
            action = plan_fallback(
                fallback, self.config, from_route=self.route or "", visited=frozenset()
            )
            self.fallback_spent = True
            return self._take_plan(action.plan, now)  # type: ignore[arg-type]
        if fallback.kind is FallbackKind.VOICEMAIL:
            return self._voicemail(fallback.value or "", now)
        self.phase = Phase.ENDING
        return [EndCall(fallback.kind.value)]

    # -- menus (ivr routes, ZIP prompts) ---------------------------------------------

    def _menu(self, route: Route, now: datetime, *, invalid: bool = False) -> list[Action]:
        """Play a menu (or a ZIP prompt) and wait for the caller's keys."""
        if self.menu is not route:
            self.menu, self.menu_attempts = route, 0
        self.phase = Phase.COLLECTING
        self.caller_answered = True  # Read() answers the channel
        if route.type is RouteType.GEO:
            ask = route.ask_zip
            assert ask is not None
            return [CollectDigits(ask.prompts, 5, ask.timeout)]
        prompts = route.prompts
        if invalid and route.invalid_prompt:
            prompts = (route.invalid_prompt, *prompts)
        return [CollectDigits(prompts, 1, route.menu_timeout, pound_ends=False)]

    def _digits(self, ev: DigitsEntered) -> list[Action]:
        if self.phase is not Phase.COLLECTING or self.menu is None:
            raise ProtocolError(f"keys entered in phase {self.phase.value}")
        menu, digits = self.menu, ev.digits if ev.status == "OK" else ""
        if menu.type is RouteType.GEO:
            return self._zip_entered(menu, digits, ev.now)
        if digits == "*" and not any(o.key == "*" for o in menu.options):
            return self._menu(menu, ev.now)  # star replays the menu
        option = next((o for o in menu.options if o.key == digits), None) if digits else None
        entry = {"ivr": menu.name, "key": digits or None, "at": iso(ev.now)}
        if option is None:
            self.menu_attempts += 1
            entry["result"] = "timeout" if not digits else "invalid"
            self.path.append(entry)
            if self.menu_attempts < menu.attempts:
                return self._menu(menu, ev.now, invalid=bool(digits))
            return self._leave_menu(menu.default or Fallback(FallbackKind.HANGUP), ev.now)
        self.inputs.append(digits)
        entry["to"] = _describe(option.target)
        self.path.append(entry)
        return [RecordInput(",".join(self.inputs), self.location)] + self._leave_menu(
            option.target, ev.now
        )

    def _leave_menu(self, target: Fallback, now: datetime) -> list[Action]:
        menu = self.menu
        self.menu, self.menu_attempts = None, 0
        self.phase = Phase.ROUTING
        self.route = menu.name if menu else self.route
        if target.kind is FallbackKind.NUMBER:
            action = plan_fallback(
                target, self.config, from_route=self.route or "", visited=frozenset()
            )
            return self._take_plan(action.plan, now)  # type: ignore[arg-type]
        return self._final(target, now)

    # -- queues ----------------------------------------------------------------------

    def _enter_queue(self, route: Route, now: datetime) -> list[Action]:
        q = route.queue
        assert q is not None
        rings = tuple(
            ring_for(self.config.receiving_numbers[t.receiving_number]) for t in route.targets
        )
        self.step_no += 1
        self.current, self.current_started = Step(route.name, rings, route.ring_timeout), now
        self.phase = Phase.QUEUED
        source = self._source()
        self.recorded |= route.record
        enter = EnterQueue(
            route.queue_name,
            q.priority(source),
            q.max_wait,
            route.whisper_for(source),
            route.record,
        )
        return [StartStep(self.step_no, route.name, rings, iso(now)), enter]

    def _queue_returned(self, ev: QueueReturned) -> list[Action]:
        if self.phase is not Phase.QUEUED:
            raise ProtocolError(f"Queue() returned in phase {self.phase.value}")
        res = ev.result
        result = "busy" if res.status in ("FULL", "JOINEMPTY", "JOINUNAVAIL") else "no_answer"
        actions = self._finish_queue_step(ev.now, res, winner=None, each=result)
        self.phase = Phase.ROUTING
        return actions + self._fallback(ev.now)

    def _ended_in_queue(self, ev: Ended) -> list[Action]:
        res = ev.queue or QueueResult()
        step = self.current
        assert step is not None
        winner = next((r for r in step.rings if res.agent and r.name == res.agent), None)
        if res.agent and winner is None:  # an agent we did not list (added by hand)
            winner = Ring(name=res.agent, number="", dial_string="")
        actions = self._finish_queue_step(ev.now, res, winner=winner, each="abandoned")
        cause = ev.result.cause
        return [*actions, self._finish_call(ev.now, cause, caller_left=winner is None)]

    def _finish_queue_step(
        self, now: datetime, res: QueueResult, *, winner: Ring | None, each: str
    ) -> list[Action]:
        step, started = self.current, self.current_started or now
        assert step is not None
        joined = started
        answered_at = joined + timedelta(seconds=res.wait_seconds) if winner else None
        results = tuple(
            RingResult(r.name, "answered" if r is winner else ("cancelled" if winner else each))
            for r in step.rings
        )
        if winner is not None and winner not in step.rings:
            results += (RingResult(winner.name, "answered"),)
        self.ring_results.extend(r.result for r in results)
        status = "CONNECTED" if winner else (res.status or "ABANDONED")
        wait = res.wait_seconds if res.wait_seconds else seconds_between(started, now)
        if winner is not None:
            self.answered = (winner, answered_at or now)
        self.path.append(
            {
                "step": self.step_no,
                "route": step.route,
                "queue": status,
                "position": res.position,
                "wait_seconds": wait,
                "agent": winner.name if winner else None,
                "started_at": iso(started),
                "ended_at": iso(now),
            }
        )
        self.current = None
        talk = seconds_between(answered_at, now) if answered_at else 0.0
        return [
            FinishStep(
                step=self.step_no,
                ended_at=iso(now),
                dial_status=f"QUEUE_{status}",
                results=results,
                ring_seconds=round(float(wait), 3),
                talk_seconds=talk,
                cause=None,
            ),
            RecordQueue(
                step.route, status, float(wait), res.position, winner.name if winner else None
            ),
        ]

    def _zip_entered(self, menu: Route, digits: str, now: datetime) -> list[Action]:
        where = (
            locate_zip(digits, self.zip_lookup) if valid_zip(digits) and self.zip_lookup else None
        )
        if where is None:
            self.menu_attempts += 1
            self.path.append(
                {"zip_prompt": menu.name, "zip": digits or None, "valid": False, "at": iso(now)}
            )
            ask = menu.ask_zip
            if ask is not None and self.menu_attempts < ask.attempts:
                return self._menu(menu, now)
            where = self.location  # no ZIP: the area code decides
        else:
            self.location = where
            self.inputs.append(digits)
            self.path.append({"zip_prompt": menu.name, "zip": digits, "at": iso(now)})
        self.asked.add(menu.name)
        self.menu, self.menu_attempts = None, 0
        self.phase = Phase.ROUTING
        self.visited.discard(menu.name)
        actions: list[Action] = [RecordInput(",".join(self.inputs), self.location)]
        return actions + self._enter(menu.name, now)

    def _to_failsafe(self, now: datetime, reason: str) -> list[Action]:
        actions: list[Action] = []
        if self.current is not None:
            actions.append(self._finish_step(now, DialResult(status="UNKNOWN")))
        return [*actions, *self._open_failsafe(now, reason), SendToFailsafe(reason)]

    def _open_failsafe(self, now: datetime, reason: str) -> list[Action]:
        self.failsafe = True
        self.phase = Phase.FAILSAFE
        self.step_no += 1
        self.current, self.current_started = Step("", (FAILSAFE_RING,), 0), now
        self.path.append({"failsafe": reason, "at": iso(now)})
        return [StartStep(self.step_no, "", (FAILSAFE_RING,), iso(now))]

    def _finish_step(self, now: datetime, res: DialResult) -> FinishStep:
        step, started = self.current, self.current_started or now
        assert step is not None
        result = RESULT_BY_STATUS.get(res.status, "failed")
        winner = _answering_ring(step, res.peer) if res.status == "ANSWER" else None
        results = []
        for ring in step.rings:
            if winner is not None:
                r = "answered" if ring is winner else "cancelled"
            else:
                r = "unknown" if res.status == "ANSWER" else result
            results.append(RingResult(ring.name, r))
        if res.status == "ANSWER" and winner is None:
            # connected to something we did not dial by name (e.g. a forwarded call)
            winner = Ring(name=res.peer or "unknown", number="", dial_string="")
        self.ring_results.extend(r.result for r in results)
        talk = res.answered_ms / 1000 if winner else 0.0
        ring_s = (
            max(0.0, (res.dialed_ms - res.answered_ms) / 1000)
            if res.dialed_ms
            else (seconds_between(started, now))
        )
        if winner is not None:
            self.answered = (winner, now - timedelta(milliseconds=res.answered_ms))
        self.path.append(
            {
                "step": self.step_no,
                "route": step.route or None,
                "dial_status": res.status,
                "started_at": iso(started),
                "ended_at": iso(now),
                "ring_seconds": round(ring_s, 3),
                "rings": [
                    {"name": ring.name, "number": ring.number, "result": r.result}
                    for ring, r in zip(step.rings, results, strict=False)
                ],
            }
        )
        self.current = None
        return FinishStep(
            step=self.step_no,
            ended_at=iso(now),
            dial_status=res.status,
            results=tuple(results),
            ring_seconds=round(ring_s, 3),
            talk_seconds=round(talk, 3),
            cause=res.cause,
        )

    def _finish_call(
        self,
        now: datetime,
        cause: int | None,
        *,
        caller_left: bool,
        notes: str = "",
        unknown: bool = False,
    ) -> FinishCall:
        self.phase = Phase.DONE
        started = self.started or now
        outcome = decide_outcome(
            answered=self.answered is not None,
            unknown=unknown,
            caller_left=caller_left and not self.voicemail_taken,
            ring_results=self.ring_results,
        )
        if outcome is not Outcome.ANSWERED and self.voicemail_taken:
            outcome = Outcome.VOICEMAIL
        answered_at = self.answered[1] if self.answered else None
        ring_end = answered_at or now
        return FinishCall(
            ended_at=iso(now),
            answered_at=iso(answered_at) if answered_at else None,
            outcome=outcome,
            hangup_cause=cause,
            ring_seconds=max(0.0, seconds_between(started, ring_end)),
            talk_seconds=max(0.0, seconds_between(answered_at, now)) if answered_at else 0.0,
            answered_by=self.answered[0].name if self.answered else None,
            answered_number=(self.answered[0].number or None) if self.answered else None,
            failsafe=self.failsafe,
            path=tuple(self.path),
            notes=notes,
            recorded=self.recorded and self.answered is not None,
            voicemail=self.voicemail_taken,
        )


def _describe(target: Fallback) -> str:
    return target.kind.value if target.value is None else f"{target.kind.value}:{target.value}"


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


def _answering_ring(step: Step, peer: str) -> Ring | None:
    """The ring that Dial() connected, from DIALEDPEERNUMBER (``phone1``, ``+1…@carrier``)."""
    for ring in step.rings:
        resource = ring.dial_string.split("/", 1)[-1]
        if peer and resource == peer:
            return ring
    return step.rings[0] if len(step.rings) == 1 else None
