"""ARI mode's transition table, walked exhaustively: every phase × every event.

Each phase is reached through real events (no field set by hand); an event the table
does not list for that phase raises ``ProtocolError``; one it lists is handled.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ctm_pbx.core.call.actions import FinishCall
from ctm_pbx.core.call.ari_flow import TRANSITIONS, CallFlow, Phase, ProtocolError
from ctm_pbx.core.call.events import (
    DialResult,
    DialReturned,
    DigitsEntered,
    Ended,
    Gone,
    HandlerFailed,
    Inbound,
    QueueResult,
    QueueReturned,
)
from ctm_pbx.core.model import NumberInfo
from tests.helpers import config

CFG = config(
    """\
  menu: {type: ivr, prompts: ctm-pbx/main-menu, options: {1: {route: one}}, default: hangup}
  q: {type: queue, targets: [desk-1], max_wait: 30, fallback: busy}
  vm: {type: single, targets: [desk-1], fallback: {voicemail: ctm-pbx/voicemail}}
"""
)
T0 = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
DID = "+13125550142"
EVENTS = (Inbound, DialReturned, DigitsEntered, QueueReturned, Ended, Gone, HandlerFailed)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def inbound(route: str | None, known: bool = True) -> Inbound:
    return Inbound(at(0), DID, NumberInfo(DID, "billboard", None, route) if known else None)


def no_answer(s: float) -> DialReturned:
    return DialReturned(at(s), DialResult("NOANSWER", 5000))


# how each phase is reached, from a new call
REACH: dict[Phase, list] = {
    Phase.ROUTING: [],
    Phase.DIALING: [inbound("one")],
    Phase.COLLECTING: [inbound("menu")],
    Phase.QUEUED: [inbound("q")],
    Phase.ENDING: [inbound("seq"), no_answer(5), no_answer(10)],  # seq falls back to busy
    Phase.VOICEMAIL: [inbound("vm"), no_answer(5)],
    Phase.FAILSAFE: [inbound(None, known=False)],
    Phase.DONE: [inbound("one"), Ended(at(3), DialResult("ANSWER", 3000, 2000, 16))],
}


def sample(kind: type, s: float = 20):
    """An event of each kind, as the adapter would send it."""
    return {
        Inbound: inbound("one"),
        DialReturned: no_answer(s),
        DigitsEntered: DigitsEntered(at(s), "1"),
        QueueReturned: QueueReturned(at(s), QueueResult("TIMEOUT", 30)),
        Ended: Ended(at(s), DialResult("", 0, 0, 16)),
        Gone: Gone(at(s), "channel gone"),
        HandlerFailed: HandlerFailed(at(s), "RuntimeError: injected"),
    }[kind]


def reach(phase: Phase) -> CallFlow:
    flow = CallFlow(CFG)
    for ev in REACH[phase]:
        flow.handle(ev)
    assert flow.phase is phase, f"{REACH[phase]} reaches {flow.phase}, not {phase}"
    return flow


def test_the_table_covers_every_phase() -> None:
    assert set(TRANSITIONS) == set(Phase)


def test_what_each_phase_takes() -> None:
    """The table, read as a specification."""
    ends = {Ended, Gone, HandlerFailed}
    assert {p: set(t) for p, t in TRANSITIONS.items()} == {
        Phase.ROUTING: {Inbound} | ends,
        Phase.DIALING: {DialReturned} | ends,
        Phase.COLLECTING: {DigitsEntered} | ends,
        Phase.QUEUED: {QueueReturned} | ends,
        Phase.ENDING: ends,
        Phase.VOICEMAIL: ends,
        Phase.FAILSAFE: ends,
        Phase.DONE: set(EVENTS),  # a call that ended ignores late events
    }


@pytest.mark.parametrize("phase", list(Phase))
@pytest.mark.parametrize("kind", EVENTS, ids=lambda k: k.__name__)
def test_every_phase_and_event(phase: Phase, kind: type) -> None:
    flow = reach(phase)
    event = sample(kind)
    if kind not in TRANSITIONS[phase]:
        with pytest.raises(ProtocolError, match=f"{kind.__name__} in phase {phase.value}"):
            flow.handle(event)
        assert flow.phase is phase, "a refused event changes nothing"
        return
    actions = flow.handle(event)
    if phase is Phase.DONE:
        assert actions == []
    elif kind in (Ended, Gone):
        assert flow.done and sum(isinstance(a, FinishCall) for a in actions) == 1
    elif kind is HandlerFailed:
        assert flow.phase is Phase.FAILSAFE
    else:
        assert actions, f"{kind.__name__} in {phase.value} did nothing"
