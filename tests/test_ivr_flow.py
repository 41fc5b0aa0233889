"""Voice menus and ZIP prompts in the ARI call flow, table-driven: keys in, actions out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ctm_pbx.core.call.actions import CollectDigits, DialStep, EndCall, RecordInput
from ctm_pbx.core.call.agi_plan import AgiStatus, channel_variables, plan_agi_call
from ctm_pbx.core.call.ari_flow import CallFlow, ProtocolError
from ctm_pbx.core.call.events import (
    DigitsEntered,
    Inbound,
)
from ctm_pbx.core.geo import ZipInfo
from ctm_pbx.core.model import NumberInfo
from tests.helpers import config

CFG = config(
    """\
  menu:
    type: ivr
    prompts: [ctm-pbx/welcome, ctm-pbx/main-menu]
    options:
      1: {route: one}
      2: {route: sub}
      3: {receiving_number: desk-3}
      "#": busy
    invalid_prompt: ctm-pbx/invalid
    attempts: 2
    timeout: 4
    default: {route: seq}
  sub:
    type: ivr
    prompts: ctm-pbx/support-menu
    options: {1: {route: all}, "*": {route: menu}}
    default: hangup
  zip:
    type: geo
    ask_zip: {prompts: ctm-pbx/enter-zip, attempts: 2}
    rules: [{zip_prefixes: ["606"], route: one}, {states: [NY], route: all}]
    default: {route: seq}
"""
)
T0 = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
ZIPS = {"60606": ZipInfo("60606", "IL", "Cook County", "Chicago")}


def run(route: str, keys: list[str | None], caller: str = "+12125550100") -> list[str]:
    """Each key (None: a timeout) answers the previous prompt; the moves, in order."""
    flow = CallFlow(CFG, zip_lookup=ZIPS.get)
    info = NumberInfo("+13125550149", "billboard", None, route)
    actions = flow.handle(Inbound(T0, "+13125550149", info, caller, None))
    out = _moves(actions)
    for i, key in enumerate(keys, 1):
        ev = DigitsEntered(T0 + timedelta(seconds=5 * i), key or "", "OK" if key else "TIMEOUT")
        out += _moves(flow.handle(ev))
    return out


def _moves(actions) -> list[str]:
    out = []
    for a in actions:
        if isinstance(a, CollectDigits):
            out.append(f"read {'&'.join(a.prompts)} max={a.max_digits}")
        elif isinstance(a, DialStep):
            out.append(f"dial {a.dial_args}")
        elif isinstance(a, EndCall):
            out.append(f"end {a.how}")
        elif isinstance(a, RecordInput):
            where = f" {a.location.zip or ''}/{a.location.region}" if a.location else ""
            out.append(f"input {a.digits}{where}")
    return out


MENU = "read ctm-pbx/welcome&ctm-pbx/main-menu max=1"
AGAIN = "read ctm-pbx/invalid&ctm-pbx/welcome&ctm-pbx/main-menu max=1"
SUB = "read ctm-pbx/support-menu max=1"
ZIP = "read ctm-pbx/enter-zip max=5"


@pytest.mark.parametrize(
    ("route", "keys", "moves"),
    [
        ("menu", ["1"], [MENU, "input 1 /NY", "dial PJSIP/phone1,10,r"]),
        ("menu", ["3"], [MENU, "input 3 /NY", "dial PJSIP/phone3,20,r"]),
        ("menu", ["#"], [MENU, "input # /NY", "end busy"]),
        ("menu", ["9", "1"], [MENU, AGAIN, "input 1 /NY", "dial PJSIP/phone1,10,r"]),
        ("menu", [None, None], [MENU, MENU, "dial PJSIP/phone1,5,r"]),  # default: seq
        ("menu", ["9", "8"], [MENU, AGAIN, "dial PJSIP/phone1,5,r"]),
        ("menu", ["*", "1"], [MENU, MENU, "input 1 /NY", "dial PJSIP/phone1,10,r"]),
        (
            "menu",
            ["2", "1"],
            [
                MENU,
                "input 2 /NY",
                SUB,
                "input 2,1 /NY",
                "dial PJSIP/phone1&PJSIP/phone2&PJSIP/phone3,15,r",
            ],
        ),
        (
            "menu",
            ["2", "*", "1"],
            [
                MENU,
                "input 2 /NY",
                SUB,
                "input 2,* /NY",
                MENU,
                "input 2,*,1 /NY",
                "dial PJSIP/phone1,10,r",
            ],
        ),
        ("sub", [None, None, None], [SUB, SUB, SUB, "end hangup"]),  # attempts default 3
        ("zip", ["60606"], [ZIP, "input 60606 60606/IL", "dial PJSIP/phone1,10,r"]),
        ("zip", ["123", "60606"], [ZIP, ZIP, "input 60606 60606/IL", "dial PJSIP/phone1,10,r"]),
        # no valid ZIP after the attempts: the area code decides (NY -> all)
        (
            "zip",
            ["99999", None],
            [ZIP, ZIP, "input  /NY", "dial PJSIP/phone1&PJSIP/phone2&PJSIP/phone3,15,r"],
        ),
    ],
)
def test_menu(route, keys, moves) -> None:
    assert run(route, keys) == moves


def test_keys_out_of_turn_are_a_protocol_error() -> None:
    flow = CallFlow(CFG)
    info = NumberInfo("+13125550142", "billboard", None, "one")
    flow.handle(Inbound(T0, "+13125550142", info, "+13125550100", None))
    with pytest.raises(ProtocolError):
        flow.handle(DigitsEntered(T0, "1"))


def test_menus_need_ari_mode_in_agi_mode() -> None:
    info = NumberInfo("+13125550149", "billboard", None, "menu")
    plan = plan_agi_call(CFG, info, "+13125550149", {}, now=T0)
    assert plan.status == AgiStatus.NEEDS_ARI and plan.needs_ari
    assert plan.reason == "route 'menu' (ivr) needs ARI mode"
    variables = dict(channel_variables(plan, call_id=1, source="billboard"))
    assert variables["CTM_NEEDS_ARI"] == "1" and variables["CTM_STATUS"] == "needs_ari"
    zip_plan = plan_agi_call(CFG, NumberInfo("+1", "billboard", None, "zip"), "+1", {}, now=T0)
    assert zip_plan.status == AgiStatus.NEEDS_ARI


def test_read_arguments() -> None:
    menu = CollectDigits(("ctm-pbx/welcome", "ctm-pbx/main-menu"), 1, 5, pound_ends=False)
    assert menu.read_args() == "ctm-pbx/welcome&ctm-pbx/main-menu,1,t(),1,5"
    assert CollectDigits(("ctm-pbx/enter-zip",), 5, 8).read_args() == "ctm-pbx/enter-zip,5,,1,8"
