"""The ARI-mode call state machine, table-driven: events in, actions out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ctm_pbx.core.call.actions import (
    DialStep,
    EndCall,
    FinishCall,
    FinishStep,
    Outcome,
    RememberRoute,
    SendToFailsafe,
    StartCall,
)
from ctm_pbx.core.call.ari_flow import CallFlow, ProtocolError
from ctm_pbx.core.call.events import (
    DialResult,
    DialReturned,
    Ended,
    Gone,
    HandlerFailed,
    Inbound,
)
from ctm_pbx.core.model import NumberInfo
from tests.helpers import config

CFG = config()
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DID = "+13125550142"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def inbound(route: str | None = "one", t: float = 0, known: bool = True) -> Inbound:
    info = NumberInfo(DID, "billboard", None, route) if known else None
    return Inbound(at(t), DID, info, "+13125550100", "Caller")


def returned(t: float, status: str, dialed_ms: int = 5000) -> DialReturned:
    return DialReturned(at(t), DialResult(status, dialed_ms, 0, 16))


def ended(t, status="ANSWER", dialed_ms=0, answered_ms=0, peer="", failsafe=False) -> Ended:
    return Ended(at(t), DialResult(status, dialed_ms, answered_ms, 16, peer), failsafe)


def moves(actions) -> list[str]:
    out = []
    for a in actions:
        if isinstance(a, DialStep):
            out.append(f"dial {a.dial_args}")
        elif isinstance(a, EndCall):
            out.append(f"end {a.how}")
        elif isinstance(a, SendToFailsafe):
            out.append("failsafe")
    return out


def drive(events) -> tuple[CallFlow, list]:
    flow = CallFlow(CFG)
    actions = []
    for ev in events:
        actions.extend(flow.handle(ev))
    return flow, actions


def finish(actions) -> FinishCall:
    done = [a for a in actions if isinstance(a, FinishCall)]
    assert len(done) == 1, "a call ends with exactly one FinishCall"
    return done[0]


def leg_results(actions) -> list[str]:
    return [f"{r.name}={r.result}" for a in actions if isinstance(a, FinishStep) for r in a.results]


CASES = [
    pytest.param(
        [inbound("one"), ended(12, "ANSWER", 12000, 9000, "phone1")],
        ["dial PJSIP/phone1,10"],
        Outcome.ANSWERED,
        "desk-1",
        ["desk-1=answered"],
        (3.0, 9.0),
        id="single answered",
    ),
    pytest.param(
        [inbound("all"), ended(20, "ANSWER", 20000, 16000, "phone2")],
        ["dial PJSIP/phone1&PJSIP/phone2&PJSIP/phone3,15"],
        Outcome.ANSWERED,
        "desk-2",
        ["desk-1=cancelled", "desk-2=answered", "desk-3=cancelled"],
        (4.0, 16.0),
        id="simultaneous: first to answer wins",
    ),
    pytest.param(
        [inbound("seq"), returned(1, "BUSY", 200), ended(9, "ANSWER", 3000, 5000, "phone2")],
        ["dial PJSIP/phone1,5", "dial PJSIP/phone2,5"],
        Outcome.ANSWERED,
        "desk-2",
        ["desk-1=busy", "desk-2=answered"],
        (4.0, 5.0),
        id="sequential skips a busy phone",
    ),
    pytest.param(
        [
            inbound("seq"),
            returned(5, "NOANSWER"),
            returned(10, "NOANSWER"),
            ended(10.5, "NOANSWER", 5000),
        ],
        ["dial PJSIP/phone1,5", "dial PJSIP/phone2,5", "end busy"],
        Outcome.NO_ANSWER,
        None,
        ["desk-1=no_answer", "desk-2=no_answer"],
        (10.5, 0.0),
        id="sequential: nobody answers, fallback busy",
    ),
    pytest.param(
        [
            inbound("seq"),
            returned(0.1, "BUSY", 100),
            returned(0.2, "BUSY", 100),
            ended(0.3, "BUSY"),
        ],
        ["dial PJSIP/phone1,5", "dial PJSIP/phone2,5", "end busy"],
        Outcome.BUSY,
        None,
        ["desk-1=busy", "desk-2=busy"],
        (0.3, 0.0),
        id="everyone busy",
    ),
    pytest.param(
        [inbound("all"), ended(4, "CANCEL", 4000)],
        ["dial PJSIP/phone1&PJSIP/phone2&PJSIP/phone3,15"],
        Outcome.ABANDONED,
        None,
        ["desk-1=abandoned", "desk-2=abandoned", "desk-3=abandoned"],
        (4.0, 0.0),
        id="caller hangs up while phones ring",
    ),
    pytest.param(
        [
            inbound("to-route"),
            returned(20, "NOANSWER", 20000),
            returned(25, "CHANUNAVAIL", 0),
            ended(27, "ANSWER", 2000, 1000, "phone2"),
        ],
        ["dial PJSIP/phone1,20", "dial PJSIP/phone1,5", "dial PJSIP/phone2,5"],
        Outcome.ANSWERED,
        "desk-2",
        ["desk-1=no_answer", "desk-1=failed", "desk-2=answered"],
        (26.0, 1.0),
        id="fallback to another route",
    ),
    pytest.param(
        [
            inbound("to-number"),
            returned(20, "NOANSWER", 20000),
            returned(40, "NOANSWER", 20000),
            ended(40.1, "NOANSWER"),
        ],
        ["dial PJSIP/phone2,20", "dial PJSIP/+13125550199@carrier,20", "end hangup"],
        Outcome.NO_ANSWER,
        None,
        ["desk-2=no_answer", "fallback:+13125550199=no_answer"],
        (40.1, 0.0),
        id="fallback number, then hang up",
    ),
    pytest.param(
        [inbound(known=False), ended(3, "ANSWER", 3000, 2000, "failsafe", failsafe=True)],
        ["failsafe"],
        Outcome.ANSWERED,
        "failsafe",
        ["failsafe=answered"],
        (1.0, 2.0),
        id="unknown DID goes to the fail-safe",
    ),
    pytest.param(
        [inbound(route=None), ended(1, "NOANSWER", 1000, 0, "", failsafe=True)],
        ["failsafe"],
        Outcome.NO_ANSWER,
        None,
        ["failsafe=no_answer"],
        (1.0, 0.0),
        id="number without a route goes to the fail-safe",
    ),
    pytest.param(
        [inbound("seq"), returned(5, "NOANSWER"), Gone(at(5.1), "caller hung up", True)],
        ["dial PJSIP/phone1,5", "dial PJSIP/phone2,5"],
        Outcome.ABANDONED,
        None,
        ["desk-1=no_answer", "desk-2=abandoned"],
        (5.1, 0.0),
        id="caller gone before the next leg started",
    ),
    pytest.param(
        [inbound("one"), Gone(at(60), "channel gone while ctm-pbx was away")],
        ["dial PJSIP/phone1,10"],
        Outcome.UNKNOWN,
        None,
        ["desk-1=unknown"],
        (60.0, 0.0),
        id="vanished without a result",
    ),
    pytest.param(
        [inbound("one"), ended(30, "NOANSWER", 10000, 0, "", failsafe=True)],
        ["dial PJSIP/phone1,10"],
        Outcome.NO_ANSWER,
        None,
        ["desk-1=unknown", "failsafe=no_answer"],
        (30.0, 0.0),
        id="dialplan fail-safe while ctm-pbx was away",
    ),
]


@pytest.mark.parametrize(("events", "want_moves", "outcome", "by", "legs", "times"), CASES)
def test_call_flow(events, want_moves, outcome, by, legs, times) -> None:
    flow, actions = drive(events)
    assert isinstance(actions[0], StartCall)
    assert moves(actions) == want_moves
    done = finish(actions)
    assert done.outcome is outcome
    assert done.answered_by == by
    assert leg_results(actions) == legs
    assert (done.ring_seconds, done.talk_seconds) == times
    assert flow.handle(ended(99)) == [], "a finished call ignores late events"


def test_start_call_carries_the_attribution_fields() -> None:
    _, actions = drive([inbound("one")])
    start = actions[0]
    assert (start.tracking_number, start.source, start.route) == (DID, "billboard", "one")
    assert (start.caller_number, start.caller_name) == ("+13125550100", "Caller")
    assert start.started_at == "2026-11-28T12:00:00.000Z"


def test_round_robin_route_asks_to_remember_its_position() -> None:
    _, actions = drive([inbound("rr")])
    remember = [a for a in actions if isinstance(a, RememberRoute)]
    assert len(remember) == 1 and remember[0].route == "rr"


def test_handler_failure_before_the_row_still_records_the_call() -> None:
    flow = CallFlow(CFG)
    flow.started = at(0)
    flow.start_record = StartCall("2026-11-28T12:00:00.000Z", DID, None, None, None, None, "one")
    actions = flow.handle(HandlerFailed(at(0), "boom"))
    assert isinstance(actions[0], StartCall)
    assert moves(actions) == ["failsafe"]
    done = finish(flow.handle(ended(5, "ANSWER", 5000, 4000, "failsafe", failsafe=True)))
    assert done.failsafe and done.outcome is Outcome.ANSWERED
    assert "handler error: boom" in done.path[0]["failsafe"]


def test_handler_failure_while_dialing_closes_the_open_leg() -> None:
    flow, actions = drive([inbound("seq"), returned(5, "NOANSWER")])
    more = flow.handle(HandlerFailed(at(5), "ari down"))
    assert moves(more) == ["failsafe"]
    assert leg_results(more) == ["desk-2=unknown"]


def test_path_records_steps_and_fallbacks() -> None:
    _, actions = drive(
        [
            inbound("to-route"),
            returned(20, "NOANSWER", 20000),
            returned(25, "BUSY", 100),
            returned(26, "BUSY", 100),
            ended(26.1, "BUSY"),
        ]
    )
    path = finish(actions).path
    kinds = [("step" if "step" in p else p.get("fallback")) for p in path]
    assert kinds == ["step", "route", "step", "step", "busy"]
    assert path[1]["to_route"] == "seq"


@pytest.mark.parametrize(
    "event",
    [returned(1, "NOANSWER"), inbound("one")],
    ids=["dial result before the call started", "second inbound"],
)
def test_impossible_events_are_protocol_errors(event) -> None:
    flow = CallFlow(CFG)
    if isinstance(event, Inbound):
        flow.handle(inbound("one"))
    with pytest.raises(ProtocolError):
        flow.handle(event)
