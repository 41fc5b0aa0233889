"""The route walk is one set of rules for both modes: ARI mode walking a call step by
step and AGI mode unrolling it at once must ring the same steps, take the same
fallbacks and end the same way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ctm_pbx.core.call.actions import DialStep, EndCall, FinishCall, RememberRoute, SendToFailsafe
from ctm_pbx.core.call.agi_plan import AgiStatus, plan_agi_call
from ctm_pbx.core.call.ari_flow import CallFlow
from ctm_pbx.core.call.events import (
    DialResult,
    DialReturned,
    Ended,
    Inbound,
)
from ctm_pbx.core.call.path import FallbackEntry, ScheduleEntry
from ctm_pbx.core.call.route_walk import Finish, Ring, RouteWalk
from ctm_pbx.core.model import FallbackKind, NumberInfo
from tests.helpers import config

CFG = config(
    """\
  chain-a: {type: single, targets: [desk-3], fallback: {route: chain-b}}
  chain-b: {type: simultaneous, targets: [desk-1, desk-2], fallback: {route: to-number}}
  office: {type: single, targets: [desk-1], schedule: weekdays, after_hours: {route: seq}}
  closed-busy: {type: single, targets: [desk-1], schedule: weekdays, after_hours: busy}
  closed-number: {type: single, targets: [desk-1], schedule: weekdays,
                  after_hours: {receiving_number: mobile}}
schedules:
  weekdays:
    time_zone: America/Chicago
    hours: {mon-fri: "09:00-17:00"}
"""
)
SUNDAY = datetime(2026, 11, 29, 16, 0, tzinfo=UTC)
MONDAY = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
DID = "+13125550142"
RINGING = sorted(name for name, r in CFG.routes.items() if r.type.dials)


def ari_walk(route: str, now: datetime) -> tuple[list[str], str, list[tuple]]:
    """ARI mode with every step unanswered: the Dial()s, how it ends, the fallbacks."""
    flow = CallFlow(CFG)
    actions = flow.handle(Inbound(now, DID, NumberInfo(DID, "billboard", None, route)))
    dials: list[str] = []
    t = now
    while True:
        dials += [a.dial_args for a in actions if isinstance(a, DialStep)]
        end = next((a for a in actions if isinstance(a, EndCall | SendToFailsafe)), None)
        if end is not None:
            break
        t += timedelta(seconds=10)
        actions = flow.handle(DialReturned(t, DialResult("NOANSWER", 10000)))
    how = end.how if isinstance(end, EndCall) else "failsafe"
    fin = flow.handle(Ended(t, DialResult("", 0, 0, 16)))
    path = next(a for a in fin if isinstance(a, FinishCall)).path
    return dials, how, _choices(path)


def _choices(path) -> list[tuple]:
    return [
        (e.get("fallback") or e.get("schedule"), e.get("to_route") or e.get("to_number"))
        for e in path
        if "fallback" in e or "schedule" in e
    ]


@pytest.mark.parametrize("now", [MONDAY, SUNDAY], ids=["open", "closed"])
@pytest.mark.parametrize("route", RINGING)
def test_both_modes_walk_the_same(route: str, now: datetime) -> None:
    plan = plan_agi_call(CFG, NumberInfo(DID, None, None, route), DID, {}, now=now)
    dials, how, choices = ari_walk(route, now)
    assert plan.status == AgiStatus.OK
    assert [s.dial_args() for s in plan.steps] == dials
    assert plan.end == how
    agi_choices = _choices([e.as_dict() for _, e in plan.transitions])
    assert agi_choices == choices


def test_a_walk_keeps_its_own_memory_and_says_what_it_advanced() -> None:
    memory: dict = {}
    walk = RouteWalk(CFG, memory)
    step = walk.enter("rr", MONDAY)
    assert isinstance(step, Ring) and step.plan.steps[0].rings[0].name == "desk-1"
    assert memory == {}, "the caller's memory is not written: the walk reports it"
    assert set(walk.memories) == {"rr"}
    again = walk.enter("rr", MONDAY)
    assert isinstance(again, Ring) and again.plan.steps[0].rings[0].name == "desk-2"


def test_the_ari_flow_reports_round_robin_memory_instead_of_writing_it() -> None:
    memory: dict = {}
    flow = CallFlow(CFG, memory)
    actions = flow.handle(Inbound(MONDAY, DID, NumberInfo(DID, None, None, "rr")))
    assert [a.route for a in actions if isinstance(a, RememberRoute)] == ["rr"]
    assert memory == {}


def test_fallbacks_and_their_path_entries() -> None:
    walk = RouteWalk(CFG)
    walk.visited.add("to-number")
    walk.enter("to-number", MONDAY)
    last = walk.fallback("to-number", MONDAY)
    assert isinstance(last, Ring) and last.last_resort
    assert walk.path[-1] == FallbackEntry(
        "number", "to-number", "2026-11-30T16:00:00.000Z", to_number="+13125550199"
    )
    assert walk.fallback("seq", MONDAY) == Finish(FallbackKind.BUSY, "", "seq")


def test_after_hours_hands_over_and_says_so() -> None:
    walk = RouteWalk(CFG)
    step = walk.enter("closed-number", SUNDAY)
    assert isinstance(step, Ring) and step.last_resort
    assert [s.rings[0].name for s in step.plan.steps] == ["mobile"]
    assert isinstance(walk.path[0], ScheduleEntry) and walk.path[0].open is False
