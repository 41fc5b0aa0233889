"""Route selection (schedules, geo), and how ARI and AGI mode follow it, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ctm_pbx.core.call.actions import DialStep, EndCall, SendToFailsafe, StartCall
from ctm_pbx.core.call.agi_plan import plan_agi_call
from ctm_pbx.core.call.ari_flow import CallFlow
from ctm_pbx.core.call.events import (
    Inbound,
)
from ctm_pbx.core.geo import locate_number
from ctm_pbx.core.model import NumberInfo
from ctm_pbx.core.route_select import select_route
from ctm_pbx.core.routing import RoutingError
from tests.helpers import config

CFG = config(
    """\
  office: {type: single, targets: [desk-1], schedule: weekdays, after_hours: {route: night}}
  night: {type: single, targets: [desk-3]}
  closed-busy: {type: single, targets: [desk-1], schedule: weekdays, after_hours: busy}
  closed-number: {type: single, targets: [desk-1], schedule: weekdays,
                  after_hours: {number: "+13125550199"}}
  by-region:
    type: geo
    rules:
      - {area_codes: ["212"], route: seq}
      - {states: [IL], route: office}
    default: {route: night}
  region-or-busy:
    type: geo
    rules: [{states: [TX], route: one}]
    default: busy
  loop-a: {type: geo, rules: [{states: [IL], route: loop-b}]}
  loop-b: {type: geo, rules: [{states: [IL], route: loop-a}]}
schedules:
  weekdays:
    time_zone: America/Chicago
    hours: {mon-fri: "09:00-17:00"}
"""
)
MONDAY_10 = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # 10:00 in Chicago
SUNDAY_10 = datetime(2026, 11, 29, 16, 0, tzinfo=UTC)
CHICAGO = locate_number("+13125550100")
NEW_YORK = locate_number("+12125550100")
LONDON = locate_number("+442071234567")


@pytest.mark.parametrize(
    ("route", "now", "where", "selected", "kinds"),
    [
        ("office", MONDAY_10, None, "office", []),
        ("office", SUNDAY_10, None, "night", ["schedule"]),
        ("closed-busy", SUNDAY_10, None, "busy", ["schedule"]),
        ("closed-number", SUNDAY_10, None, "number:+13125550199", ["schedule"]),
        ("by-region", MONDAY_10, CHICAGO, "office", ["geo"]),
        ("by-region", SUNDAY_10, CHICAGO, "night", ["geo", "schedule"]),  # geo, then hours
        ("by-region", MONDAY_10, NEW_YORK, "seq", ["geo"]),
        ("by-region", MONDAY_10, LONDON, "night", ["geo"]),  # no rule: default
        ("by-region", MONDAY_10, None, "night", ["geo"]),  # unknown caller: default
        ("region-or-busy", MONDAY_10, CHICAGO, "busy", ["geo"]),
    ],
)
def test_select(route, now, where, selected, kinds) -> None:
    sel = select_route(CFG, route, now=now, where=where)
    got = sel.route.name if sel.route else sel.fallback.kind.value
    if sel.fallback and sel.fallback.value:
        got += f":{sel.fallback.value}"
    assert got == selected
    assert [next(k for k in ("schedule", "geo") if k in p.as_dict()) for p in sel.path] == kinds


def test_path_entries_say_what_was_decided() -> None:
    sel = select_route(CFG, "by-region", now=SUNDAY_10, where=CHICAGO)
    geo, hours = (p.as_dict() for p in sel.path)
    assert geo["geo"] == {"region": "IL", "area_code": "312", "from": "number"}
    assert (geo["from_route"], geo["to_route"]) == ("by-region", "office")
    assert hours == {
        "schedule": "weekdays",
        "open": False,
        "from_route": "office",
        "at": "2026-11-29T16:00:00.000Z",
        "to_route": "night",
    }


def test_a_selection_loop_is_an_error() -> None:
    with pytest.raises(RoutingError, match="loop"):
        select_route(CFG, "loop-a", now=MONDAY_10, where=CHICAGO)


def inbound(route: str, now: datetime, caller: str) -> list:
    flow = CallFlow(CFG)
    info = NumberInfo("+13125550142", "billboard", None, route)
    return flow.handle(Inbound(now, "+13125550142", info, caller, None))


@pytest.mark.parametrize(
    ("route", "now", "caller", "move"),
    [
        ("office", MONDAY_10, "+13125550100", "dial PJSIP/phone1,20"),
        ("office", SUNDAY_10, "+13125550100", "dial PJSIP/phone3,20"),
        ("closed-busy", SUNDAY_10, "+13125550100", "end busy"),
        ("closed-number", SUNDAY_10, "+13125550100", "dial PJSIP/+13125550199@carrier,20"),
        ("by-region", MONDAY_10, "+12125550100", "dial PJSIP/phone1,5"),
        ("by-region", MONDAY_10, "+13125550100", "dial PJSIP/phone1,20"),
        ("by-region", MONDAY_10, "+442071234567", "dial PJSIP/phone3,20"),
        ("loop-a", MONDAY_10, "+13125550100", "failsafe"),
    ],
)
def test_call_flow_runs_the_selected_route(route, now, caller, move) -> None:
    actions = inbound(route, now, caller)
    moves = [
        f"dial {a.dial_args}"
        if isinstance(a, DialStep)
        else f"end {a.how}"
        if isinstance(a, EndCall)
        else "failsafe"
        for a in actions
        if isinstance(a, DialStep | EndCall | SendToFailsafe)
    ]
    assert moves == [move]
    start = next(a for a in actions if isinstance(a, StartCall))
    assert start.route == route, "the row keeps the number's own route"
    assert start.location == locate_number(caller)


def test_agi_mode_decides_schedules_and_geo_up_front() -> None:
    info = NumberInfo("+13125550142", "billboard", None, "by-region")
    plan = plan_agi_call(CFG, info, "+13125550142", {}, now=SUNDAY_10, where=CHICAGO)
    assert [s.dial_args() for s in plan.steps] == ["PJSIP/phone3,20"]
    assert [next(iter(e.as_dict())) for _, e in plan.transitions] == ["geo", "schedule", "fallback"]
    plan = plan_agi_call(CFG, info, "+13125550142", {}, now=MONDAY_10, where=NEW_YORK)
    assert [s.dial_args() for s in plan.steps] == ["PJSIP/phone1,5", "PJSIP/phone2,5"]
    assert plan.end == "busy"
