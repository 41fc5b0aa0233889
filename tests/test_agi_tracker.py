"""AGI mode: following a call from AMI events, table-driven (events in, records out)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ctm_pbx.core.call.actions import FinishCall, FinishStep, StartStep
from ctm_pbx.core.call.agi_plan import plan_agi_call
from ctm_pbx.core.call.agi_tracker import AgiCallTracker, ChannelLost, DialBegan, DialEnded, HungUp
from ctm_pbx.core.model import NumberInfo
from tests.helpers import config

CFG = config()
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DID = "+13125550142"


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def tracker(route: str | None = "one", known: bool = True) -> AgiCallTracker:
    info = NumberInfo(DID, "billboard", None, route) if known else None
    return AgiCallTracker(plan_agi_call(CFG, info, DID, {}, now=T0), T0)


def begin(t: float, phone: str, n: int) -> DialBegan:
    return DialBegan(at(t), f"dest-{n}", f"PJSIP/{phone}-0000000{n}", phone)


def end(t: float, n: int, status: str) -> DialEnded:
    return DialEnded(at(t), f"dest-{n}", status)


def run(tr: AgiCallTracker, events) -> list:
    out = []
    for ev in events:
        out += tr.handle(ev)
    return out


def summary(actions) -> tuple[list[str], FinishCall]:
    """Each ring's result, in step order; and the call's record."""
    rings = []
    for a in actions:
        if isinstance(a, FinishStep):
            rings += [f"{a.step}:{r.name}={r.result}" for r in a.results]
    finish = [a for a in actions if isinstance(a, FinishCall)]
    assert len(finish) == 1, "exactly one FinishCall"
    return rings, finish[0]


CASES = [
    # (name, route, events, rings, outcome, answered_by)
    (
        "single answered",
        "one",
        [begin(0.1, "phone1", 1), end(1.1, 1, "ANSWER"), HungUp(at(5.1), 16)],
        ["1:desk-1=answered"],
        "answered",
        "desk-1",
    ),
    (
        "simultaneous: first answer wins, the others are cancelled",
        "all",
        [
            begin(0.1, "phone1", 1),
            begin(0.1, "phone2", 2),
            begin(0.1, "phone3", 3),
            end(2.0, 1, "CANCEL"),
            end(2.0, 3, "CANCEL"),
            end(2.0, 2, "ANSWER"),
            HungUp(at(9), 16),
        ],
        ["1:desk-1=cancelled", "1:desk-2=answered", "1:desk-3=cancelled"],
        "answered",
        "desk-2",
    ),
    (
        "sequential: busy, then answered",
        "seq",
        [
            begin(0.1, "phone1", 1),
            end(0.2, 1, "BUSY"),
            begin(0.3, "phone2", 2),
            end(1.0, 2, "ANSWER"),
            HungUp(at(3), 16),
        ],
        ["1:desk-1=busy", "2:desk-2=answered"],
        "answered",
        "desk-2",
    ),
    (
        "sequential: nobody answers, the busy fallback ends it",
        "seq",
        [
            begin(0.1, "phone1", 1),
            end(5.1, 1, "NOANSWER"),
            begin(5.2, "phone2", 2),
            end(10.2, 2, "NOANSWER"),
            HungUp(at(10.5), 17),
        ],
        ["1:desk-1=no_answer", "2:desk-2=no_answer"],
        "no_answer",
        None,
    ),
    (
        "caller hangs up while it rings",
        "all",
        [
            begin(0.1, "phone1", 1),
            begin(0.1, "phone2", 2),
            begin(0.1, "phone3", 3),
            end(3, 1, "CANCEL"),
            end(3, 2, "CANCEL"),
            end(3, 3, "CANCEL"),
            HungUp(at(3), 16),
        ],
        ["1:desk-1=abandoned", "1:desk-2=abandoned", "1:desk-3=abandoned"],
        "abandoned",
        None,
    ),
    (
        "hangup arrives before the DialEnds",
        "one",
        [begin(0.1, "phone1", 1), HungUp(at(2), 16)],
        ["1:desk-1=abandoned"],
        "abandoned",
        None,
    ),
    (
        "a step Dial() could not ring (no channel) is recorded as failed",
        "seq",
        [begin(0.1, "phone2", 2), end(0.5, 2, "ANSWER"), HungUp(at(2), 16)],
        ["1:desk-1=failed", "2:desk-2=answered"],
        "answered",
        "desk-2",
    ),
    (
        "one ring of a step never began: failed",
        "all",
        [
            begin(0.1, "phone1", 1),
            begin(0.1, "phone3", 3),
            end(15.1, 1, "NOANSWER"),
            end(15.1, 3, "NOANSWER"),
            HungUp(at(15.2), 16),
        ],
        ["1:desk-1=no_answer", "1:desk-2=failed", "1:desk-3=no_answer"],
        "no_answer",
        None,
    ),
    (
        "unknown number: the admin's default destination is recorded as it rings",
        None,
        [begin(0.1, "failsafe", 1), end(0.4, 1, "ANSWER"), HungUp(at(4), 16)],
        ["1:PJSIP/failsafe=answered"],
        "answered",
        "PJSIP/failsafe",
    ),
    (
        "the dialplan dials again after an answered Dial() returned: both steps recorded",
        "one",
        [
            begin(0.1, "phone1", 1),
            end(1.1, 1, "ANSWER"),
            begin(3.0, "failsafe", 2),  # e.g. Dial()'s g option, then the admin's next step
            end(3.5, 2, "ANSWER"),
            HungUp(at(6), 16),
        ],
        ["1:desk-1=answered", "2:PJSIP/failsafe=answered"],
        "answered",
        "desk-1",
    ),
    (
        "AMI lost the call: unknown",
        "one",
        [begin(0.1, "phone1", 1), ChannelLost(at(60), "channel gone unseen")],
        ["1:desk-1=unknown"],
        "unknown",
        None,
    ),
]


@pytest.mark.parametrize(
    ("route", "events", "rings", "outcome", "answered_by"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_call_records(route, events, rings, outcome, answered_by) -> None:
    tr = tracker(route, known=route is not None)
    got_rings, finish = summary(run(tr, events))
    assert got_rings == rings
    assert (finish.outcome.value, finish.answered_by) == (outcome, answered_by)
    assert finish.failsafe is (route is None)
    assert tr.done and tr.handle(HungUp(at(99), 16)) == [], "nothing after the end"


def test_times_come_from_the_events() -> None:
    tr = tracker("seq")
    actions = run(
        tr,
        [
            begin(0.5, "phone1", 1),
            end(1.5, 1, "BUSY"),
            begin(1.6, "phone2", 2),
            end(4.6, 2, "ANSWER"),
            HungUp(at(10.6), 16),
        ],
    )
    starts = [a for a in actions if isinstance(a, StartStep)]
    steps = [a for a in actions if isinstance(a, FinishStep)]
    _, finish = summary(actions)
    assert [s.started_at for s in starts] == [
        "2026-11-28T12:00:00.500Z",
        "2026-11-28T12:00:01.600Z",
    ]
    assert [(s.ring_seconds, s.talk_seconds) for s in steps] == [(1.0, 0.0), (3.0, 6.0)]
    assert (finish.ring_seconds, finish.talk_seconds) == (4.6, 6.0)
    assert finish.answered_at == "2026-11-28T12:00:04.600Z" and finish.hangup_cause == 16
    assert finish.answered_number == "+13125550102"


def test_an_answered_step_ends_when_the_dialplan_dials_again() -> None:
    tr = tracker("one")
    actions = run(
        tr,
        [begin(0.1, "phone1", 1), end(1.1, 1, "ANSWER"), begin(3.0, "failsafe", 2)],
    )
    (first,) = [a for a in actions if isinstance(a, FinishStep)]
    assert (first.step, first.dial_status, first.talk_seconds) == (1, "ANSWER", 1.9)
    assert [a.step for a in actions if isinstance(a, StartStep)] == [1, 2]


def test_path_has_each_step_and_the_fallback_taken() -> None:
    cfg = config()
    plan = plan_agi_call(cfg, NumberInfo(DID, "billboard", None, "to-route"), DID, {}, now=T0)
    tr = AgiCallTracker(plan, T0)
    actions = run(
        tr,
        [
            begin(0, "phone1", 1),
            end(20, 1, "NOANSWER"),
            begin(20.1, "phone1", 2),
            end(20.2, 2, "BUSY"),
            begin(20.3, "phone2", 3),
            end(25.3, 3, "NOANSWER"),
            HungUp(at(25.4), 17),
        ],
    )
    _, finish = summary(actions)
    kinds = [p.get("fallback") or f"step {p['step']} {p['dial_status']}" for p in finish.path]
    assert kinds == ["step 1 NOANSWER", "route", "step 2 BUSY", "step 3 NOANSWER", "busy"]
    assert finish.outcome.value == "no_answer"


def test_give_up_marks_the_call_as_default_destination() -> None:
    tr = tracker("one")
    tr.give_up(at(2), "ctm-pbx answered too late")
    _, finish = summary(
        run(tr, [begin(3, "failsafe", 1), end(3.2, 1, "ANSWER"), HungUp(at(5), 16)])
    )
    assert finish.failsafe and finish.answered_by == "PJSIP/failsafe"
    assert finish.path[0]["default_destination"] == "ctm-pbx answered too late"


def test_adopted_after_restart_is_unknown_not_abandoned() -> None:
    tr = AgiCallTracker(plan_agi_call(CFG, None, DID, {}, now=T0), T0, adopted=True)
    _, finish = summary(tr.handle(HungUp(at(30), 16)))
    assert finish.outcome.value == "unknown" and "restart" in finish.notes


def test_lost_sight_of_mid_call_is_unknown_not_abandoned() -> None:
    # AMI down while it rang: its answer was missed, only the hangup is seen
    tr = tracker("one")
    run(tr, [begin(1, "phone1", 1)])
    tr.lose_sight("AMI was down")
    _, finish = summary(tr.handle(HungUp(at(30), 16)))
    assert finish.outcome.value == "unknown" and finish.notes == "AMI was down"


def test_lost_sight_after_the_answer_keeps_the_answer() -> None:
    tr = tracker("one")
    run(tr, [begin(1, "phone1", 1), end(2, 1, "ANSWER")])
    tr.lose_sight("AMI was down")
    _, finish = summary(tr.handle(HungUp(at(30), 16)))
    assert finish.outcome.value == "answered" and finish.answered_by
