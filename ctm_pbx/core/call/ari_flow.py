"""ARI mode's per-call state machine: events in, actions out.

The adapter (``adapters/ari_calls.py``) turns Stasis arguments into events and
carries out the actions (ARI requests, store writes). How a call goes (see
dialplan/ctm-pbx.conf):

    Inbound -> Dial(step 1) -> DialReturned -> Dial(step 2) ... -> fallback
                                         \\-> Ended (answered, hung up, abandoned)

``TRANSITIONS`` says which events each phase takes; any other raises
``ProtocolError`` (as h11 does). A call ends with exactly one ``FinishCall``; a call
that ended ignores late events. Where the call goes is ``RouteWalk``'s to say, its
books are ``CallLedger``'s: both are shared with AGI mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from ctm_pbx.core.call import menus, queues
from ctm_pbx.core.call.actions import (
    Action,
    CollectDigits,
    DialStep,
    EndCall,
    FinishCall,
    FinishStep,
    RecordInput,
    RecordQueue,
    RememberRoute,
    RingResult,
    SendToFailsafe,
    StartCall,
    StartStep,
    TakeMessage,
    start_call,
)
from ctm_pbx.core.call.events import (
    DialResult,
    DialReturned,
    DigitsEntered,
    Ended,
    Event,
    Gone,
    HandlerFailed,
    Inbound,
    QueueResult,
    QueueReturned,
)
from ctm_pbx.core.call.ledger import RESULT_BY_STATUS, CallLedger
from ctm_pbx.core.call.path import FailsafeEntry, VoicemailEntry
from ctm_pbx.core.call.route_walk import Ask, Finish, Ring, RouteWalk, WalkStep
from ctm_pbx.core.clock import iso, seconds_between
from ctm_pbx.core.geo import Location, ZipLookup
from ctm_pbx.core.model import Config, Fallback, FallbackKind, GeoRoute, Menu, QueueRoute
from ctm_pbx.core.routing import Ring as Receiver
from ctm_pbx.core.routing import RouteMemory, RoutingError, Step


class Phase(StrEnum):
    ROUTING = "routing"  # in Stasis: we decide
    DIALING = "dialing"  # in the dialplan's Dial()
    COLLECTING = "collecting"  # in the dialplan's Read(): a menu or a ZIP prompt
    QUEUED = "queued"  # in the dialplan's Queue(): waiting for an agent
    ENDING = "ending"  # sent to busy/hangup
    VOICEMAIL = "voicemail"  # leaving a message
    FAILSAFE = "failsafe"  # sent to the dialplan fail-safe
    DONE = "done"


class ProtocolError(RuntimeError):
    """An event that cannot happen in the current phase."""


FAILSAFE_RING = Receiver(name="failsafe", number="", dial_string="")

# Events a call may report whatever it is doing: its end, and our own failure.
_ALWAYS = {Ended: "_ended", Gone: "_gone", HandlerFailed: "_handler_failed"}

# phase -> event type -> handler. Not in the table: ``ProtocolError``.
TRANSITIONS: dict[Phase, dict[type, str]] = {
    Phase.ROUTING: {Inbound: "_inbound", **_ALWAYS},
    Phase.DIALING: {DialReturned: "_dial_returned", **_ALWAYS},
    Phase.COLLECTING: {DigitsEntered: "_digits", **_ALWAYS},
    Phase.QUEUED: {QueueReturned: "_queue_returned", **_ALWAYS},
    Phase.ENDING: dict(_ALWAYS),
    Phase.VOICEMAIL: dict(_ALWAYS),
    Phase.FAILSAFE: dict(_ALWAYS),
    Phase.DONE: {
        kind: "_ignore"
        for kind in (
            Inbound,
            DialReturned,
            DigitsEntered,
            QueueReturned,
            Ended,
            Gone,
            HandlerFailed,
        )
    },
}


@dataclass
class CallFlow:
    """One call's routing state (ARI mode)."""

    config: Config
    memory_of: dict[str, RouteMemory] = field(default_factory=dict)
    zip_lookup: ZipLookup | None = None  # the adapter's ZIP dataset (for geo ZIP prompts)
    phase: Phase = Phase.ROUTING
    started: datetime | None = None
    route: str | None = None
    books: CallLedger | None = None
    walk: RouteWalk | None = None
    pending: list[Step] = field(default_factory=list)
    last_resort: bool = False  # the steps ringing are a number handed over to
    start_record: StartCall | None = None
    start_emitted: bool = False
    menu: Menu | None = None  # the ivr/geo route waiting for keys
    menu_attempts: int = 0
    inputs: list[str] = field(default_factory=list)
    caller_answered: bool = False  # a menu answered the caller: Dial() must play ringback
    recorded: bool = False
    voicemail_taken: bool = False

    # -- entry points --------------------------------------------------------

    def handle(self, event: Event) -> list[Action]:
        name = TRANSITIONS[self.phase].get(type(event))
        if name is None:
            raise ProtocolError(f"{type(event).__name__} in phase {self.phase.value}")
        handler: Callable[[Event], list[Action]] = getattr(self, name)
        return handler(event)

    @property
    def done(self) -> bool:
        return self.phase is Phase.DONE

    def close(self) -> None:
        """Nothing more to do for this call (its row went elsewhere, e.g. the spool)."""
        self.phase = Phase.DONE

    @property
    def location(self) -> Location | None:
        return self.walk.where if self.walk else None

    @classmethod
    def resume(
        cls,
        config: Config,
        memory_of: dict[str, RouteMemory],
        *,
        started: datetime,
        route: str | None,
        step_no: int,
        open_step: Step | None,
        open_step_started: datetime | None,
        ring_results: list[str],
        failsafe_reason: str = "",
    ) -> CallFlow:
        """A flow rebuilt from the store after a daemon restart (the call is in Dial(),
        or in the fail-safe when its open step is the fail-safe's: ``failsafe_reason``
        then says why, in the path)."""
        failsafe = open_step is not None and any(r.name == "failsafe" for r in open_step.rings)
        flow = cls(config=config, memory_of=memory_of, started=started, route=route)
        books = flow.books = CallLedger(started, step_no=step_no, failsafe=failsafe)
        if failsafe and failsafe_reason:
            books.note(FailsafeEntry(failsafe_reason, iso(started)))
        books.ring_results.extend(ring_results)
        if open_step is not None:
            books.step_no -= 1
            books.start_step(open_step, open_step_started or started)
        flow.walk = RouteWalk(config, memory_of, visited={route} if route else set())
        flow.phase = Phase.FAILSAFE if failsafe else Phase.DIALING
        flow.start_emitted = True
        return flow

    # -- handlers --------------------------------------------------------------

    def _ignore(self, ev: Event) -> list[Action]:
        return []

    def _inbound(self, ev: Inbound) -> list[Action]:
        if self.started is not None:
            raise ProtocolError("a second Inbound for the same call")
        self.started = ev.now
        self.books = CallLedger(ev.now)
        info = ev.number
        self.route = info.route if info else None
        start = start_call(ev.now, ev.did, info, ev.caller_number, ev.caller_name)
        self.walk = RouteWalk(self.config, self.memory_of, start.location)
        self.start_record = start
        actions = [start, *self._route_inbound(ev)]
        self.start_emitted = True
        return actions

    def _route_inbound(self, ev: Inbound) -> list[Action]:
        info = ev.number
        if info is None:
            return self._to_failsafe(ev.now, f"{ev.did} is not a tracking number")
        if self.route is None:
            return self._to_failsafe(ev.now, f"{info.number} has no route")
        if self.route not in self.config.routes:
            return self._to_failsafe(ev.now, f"route '{self.route}' is not configured")
        self._walk.visited.add(self.route)
        return self._go(lambda walk: walk.enter(self.route or "", ev.now), ev.now)

    def _dial_returned(self, ev: DialReturned) -> list[Action]:
        actions: list[Action] = [self._finish_step(ev.now, ev.result)]
        self.phase = Phase.ROUTING
        if self.pending:
            return actions + self._dial_next(ev.now)
        return actions + self._fallback(ev.now)

    def _ended(self, ev: Ended) -> list[Action]:
        books = self._books(ev.now)
        res = ev.result
        caller_left = self.phase in (Phase.ROUTING, Phase.COLLECTING) or res.status in (
            "CANCEL",
            "",
        )
        if self.phase is Phase.QUEUED and books.current is not None:
            return self._ended_in_queue(ev)
        actions: list[Action] = []
        if ev.failsafe_used and not books.failsafe:
            # the dialplan sent the call to its fail-safe while ctm-pbx was away
            if books.current is not None:
                actions.append(self._finish_step(ev.now, DialResult(status="UNKNOWN")))
            actions.extend(self._open_failsafe(ev.now, "dialplan fail-safe (ctm-pbx away)"))
        if books.current is not None:
            actions.append(self._finish_step(ev.now, res))
        actions.append(self._finish_call(ev.now, res.cause, caller_left=caller_left))
        return actions

    def _gone(self, ev: Gone) -> list[Action]:
        actions: list[Action] = []
        status = "" if ev.caller_left or self.phase is Phase.ROUTING else "UNKNOWN"
        if self._books(ev.now).current is not None:
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

    # -- walking the routes --------------------------------------------------------

    @property
    def _walk(self) -> RouteWalk:
        if self.walk is None:
            self.walk = RouteWalk(self.config, self.memory_of)
        return self.walk

    def _books(self, now: datetime) -> CallLedger:
        if self.books is None:
            self.books = CallLedger(self.started or now)
        return self.books

    def _go(self, move: Callable[[RouteWalk], WalkStep], now: datetime) -> list[Action]:
        """Take the walk's next step and act on it; a routing error is the fail-safe's."""
        walk = self._walk
        books = self._books(now)
        try:
            step = move(walk)
        except RoutingError as exc:
            return self._to_failsafe(now, str(exc))
        finally:
            for entry in walk.path:
                books.note(entry)
            walk.path.clear()
        actions: list[Action] = []
        for route, memory in walk.memories.items():
            actions.append(RememberRoute(route, memory))
        walk.memories.clear()
        if isinstance(step, Ring):
            self.route = step.route
            self.last_resort = step.last_resort
            steps = [replace(s, options=self._dial_options(s)) for s in step.plan.steps]
            self.pending = steps
            return actions + self._dial_next(now)
        if isinstance(step, Ask):
            self.route = step.route.name
            if isinstance(step.route, QueueRoute):
                return actions + self._enter_queue(step.route, now)
            return actions + self._menu(step.route, now)
        self.route = step.route or self.route
        return actions + self._finish(step, now)

    def _finish(self, step: Finish, now: datetime) -> list[Action]:
        if step.kind is FallbackKind.VOICEMAIL:
            self.phase = Phase.VOICEMAIL
            self.voicemail_taken = True
            self._books(now).note(VoicemailEntry(step.greeting, iso(now)))
            max_s = self.config.asterisk.recordings.voicemail_max_seconds
            return [TakeMessage(step.greeting, max_s)]
        self.phase = Phase.ENDING
        return [EndCall(step.kind.value)]

    def _fallback(self, now: datetime) -> list[Action]:
        if self.last_resort:
            self.phase = Phase.ENDING
            return [EndCall("hangup")]
        route = self.route or ""
        return self._go(lambda walk: walk.fallback(route, now), now)

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

    def _dial_next(self, now: datetime) -> list[Action]:
        step = self.pending.pop(0)
        start = self._books(now).start_step(step, now)
        self.phase = Phase.DIALING
        route = self.config.routes.get(step.route)
        record = bool(route and route.record)
        self.recorded |= record
        return [start, DialStep(step.dial_args(), record)]

    # -- menus (ivr routes, ZIP prompts) ---------------------------------------------

    def _menu(self, route: Menu, now: datetime, *, invalid: bool = False) -> list[Action]:
        if self.menu is not route:
            self.menu, self.menu_attempts = route, 0
        self.phase = Phase.COLLECTING
        self.caller_answered = True  # Read() answers the channel
        prompt: CollectDigits = menus.prompt(route, invalid=invalid)
        return [prompt]

    def _digits(self, ev: DigitsEntered) -> list[Action]:
        if self.menu is None:
            raise ProtocolError("keys entered with no menu playing")
        menu, digits = self.menu, ev.digits if ev.status == "OK" else ""
        if isinstance(menu, GeoRoute):
            return self._zip_entered(menu, digits, ev.now)
        ans = menus.answer(menu, digits, self.menu_attempts, iso(ev.now))
        if ans.entry is None:
            return self._menu(menu, ev.now)
        self._books(ev.now).note(ans.entry)
        if not ans.chosen:
            self.menu_attempts += 1
        if ans.target is None:
            return self._menu(menu, ev.now, invalid=ans.invalid)
        actions: list[Action] = []
        if ans.chosen:
            self.inputs.append(ans.chosen)
            actions.append(RecordInput(",".join(self.inputs), self.location))
        return actions + self._leave_menu(ans.target, ev.now)

    def _leave_menu(self, target: Fallback, now: datetime) -> list[Action]:
        menu = self.menu
        self.menu, self.menu_attempts = None, 0
        self.phase = Phase.ROUTING
        self.route = menu.name if menu else self.route
        name = self.route or ""
        # a number the menu leads to is not the last resort: the menu route's fallback
        # runs when it does not answer
        return self._go(lambda walk: walk.hand_over(target, name, now, last_resort=False), now)

    def _zip_entered(self, menu: GeoRoute, digits: str, now: datetime) -> list[Action]:
        walk, books = self._walk, self._books(now)
        ans = menus.zip_answer(menu, digits, self.menu_attempts, iso(now), self.zip_lookup)
        books.note(ans.entry)
        if ans.where is None:
            self.menu_attempts += 1
            if ans.ask_again:
                return self._menu(menu, now)
        else:
            walk.where = ans.where
            self.inputs.append(digits)
        walk.asked.add(menu.name)
        self.menu, self.menu_attempts = None, 0
        self.phase = Phase.ROUTING
        walk.visited.discard(menu.name)
        actions: list[Action] = [RecordInput(",".join(self.inputs), self.location)]
        return actions + self._go(lambda w: w.enter(menu.name, now), now)

    # -- queues ----------------------------------------------------------------------

    def _enter_queue(self, route: QueueRoute, now: datetime) -> list[Action]:
        step, enter = queues.enter(route, self.config, self._source())
        start = self._books(now).start_step(step, now)
        self.phase = Phase.QUEUED
        self.recorded |= route.record
        return [start, enter]

    def _queue_returned(self, ev: QueueReturned) -> list[Action]:
        res = ev.result
        actions = self._finish_queue_step(ev.now, res, None, queues.gave_up_result(res))
        self.phase = Phase.ROUTING
        return actions + self._fallback(ev.now)

    def _ended_in_queue(self, ev: Ended) -> list[Action]:
        res = ev.queue or QueueResult()
        books = self._books(ev.now)
        assert books.current is not None
        won = queues.winner(books.current.step, res)
        actions = self._finish_queue_step(ev.now, res, won, "abandoned")
        cause = ev.result.cause
        return [*actions, self._finish_call(ev.now, cause, caller_left=won is None)]

    def _finish_queue_step(
        self, now: datetime, res: QueueResult, won: Receiver | None, each: str
    ) -> list[Action]:
        books = self._books(now)
        cur = books.current
        assert cur is not None
        answered_at = cur.started + timedelta(seconds=res.wait_seconds) if won else None
        status = "CONNECTED" if won else (res.status or "ABANDONED")
        wait = res.wait_seconds if res.wait_seconds else seconds_between(cur.started, now)
        if won is not None:
            books.answer(won, answered_at or now)
        route = cur.step.route
        finish = books.finish_queue_step(
            now,
            status=status,
            results=queues.results(cur.step, won, each),
            wait_seconds=wait,
            position=res.position,
            agent=won.name if won else None,
            talk_seconds=seconds_between(answered_at, now) if answered_at else 0.0,
        )
        record = RecordQueue(route, status, float(wait), res.position, won.name if won else None)
        return [finish, record]

    # -- the fail-safe and the books ---------------------------------------------------

    def _to_failsafe(self, now: datetime, reason: str) -> list[Action]:
        actions: list[Action] = []
        if self._books(now).current is not None:
            actions.append(self._finish_step(now, DialResult(status="UNKNOWN")))
        return [*actions, *self._open_failsafe(now, reason), SendToFailsafe(reason)]

    def _open_failsafe(self, now: datetime, reason: str) -> list[Action]:
        books = self._books(now)
        books.failsafe = True
        self.phase = Phase.FAILSAFE
        books.note(FailsafeEntry(reason, iso(now)))
        start: StartStep = books.start_step(Step("", (FAILSAFE_RING,), 0), now)
        return [start]

    def _finish_step(self, now: datetime, res: DialResult) -> FinishStep:
        books = self._books(now)
        cur = books.current
        assert cur is not None
        step = cur.step
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
            winner = Receiver(name=res.peer or "unknown", number="", dial_string="")
        talk = res.answered_ms / 1000 if winner else 0.0
        if res.dialed_ms:
            ring_s = max(0.0, (res.dialed_ms - res.answered_ms) / 1000)
        else:
            ring_s = seconds_between(cur.started, now)
        if winner is not None:
            books.answer(winner, now - timedelta(milliseconds=res.answered_ms))
        return books.finish_step(
            now,
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
        return self._books(now).finish_call(
            now,
            cause,
            caller_left=caller_left,
            unknown=unknown,
            voicemail=self.voicemail_taken,
            recorded=self.recorded,
            notes=notes,
        )


def _answering_ring(step: Step, peer: str) -> Receiver | None:
    """The ring that Dial() connected, from DIALEDPEERNUMBER (``phone1``, ``+1…@carrier``)."""
    for ring in step.rings:
        resource = ring.dial_string.split("/", 1)[-1]
        if peer and resource == peer:
            return ring
    return step.rings[0] if len(step.rings) == 1 else None
