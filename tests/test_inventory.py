"""The inventory's rules in core: releases a sync may make unforced; one role per number."""

from __future__ import annotations

import pytest

from ctm_pbx.core.inventory import NumberRecord, SyncPlan, release_refusal, role_clash
from ctm_pbx.core.model import ReceivingNumber, Target


def inventory(config: int, cli: int = 0, released: int = 0) -> dict[str, NumberRecord]:
    recs = [
        NumberRecord(f"+1312555{i:04d}", "s", None, "r", managed_by="config") for i in range(config)
    ]
    recs += [NumberRecord(f"+1202555{i:04d}", "s", None, "r") for i in range(cli)]
    recs += [
        NumberRecord(f"+1646555{i:04d}", "s", None, "r", status="released", managed_by="config")
        for i in range(released)
    ]
    return {r.number: r for r in recs}


@pytest.mark.parametrize(
    ("config", "cli", "released", "releasing", "limit", "refused"),
    [
        (4, 0, 0, 0, 0, False),  # releasing nothing is always allowed
        (4, 0, 0, 1, 25, False),  # 25% of 4: at the limit
        (3, 0, 0, 1, 25, True),  # 33%
        (4, 0, 0, 4, 99, True),  # a config declaring none of them
        (4, 0, 0, 4, 100, False),  # 100: no limit
        (4, 0, 0, 1, 0, True),  # 0: every release needs --force
        (4, 40, 0, 2, 25, True),  # CLI numbers are not the config's: 2 of 4, not of 44
        (4, 0, 40, 1, 25, False),  # released ones do not count either
    ],
)
def test_release_refusal(config, cli, released, releasing, limit, refused) -> None:
    existing = inventory(config, cli, released)
    plan = SyncPlan(release=[f"+1312555{i:04d}" for i in range(releasing)])
    reason = release_refusal(plan, existing, limit)
    assert (reason is not None) == refused, reason
    if refused:
        assert f"no longer declares {releasing} of the {config} numbers" in reason
        assert all(number in reason for number in plan.release)


TARGETS = {"main": Target("main", "+13125550100")}
RECEIVING = {"desk": ReceivingNumber("desk", "+13125550101", "PJSIP/{number}@carrier")}


@pytest.mark.parametrize(
    ("number", "role", "name"),
    [
        ("+13125550100", "target", "main"),
        ("+13125550101", "receiving", "desk"),
        ("+13125550102", None, None),
    ],
)
def test_role_clash(number, role, name) -> None:
    clash = role_clash(number, TARGETS, RECEIVING)
    assert (clash and (clash.role, clash.name)) == (role and (role, name))


def test_rows_of_a_csv_import_meet_the_cli_rules_and_say_where_they_fail() -> None:
    from ctm_pbx.core.inventory import check_rows
    from tests.helpers import config

    cfg = config()
    rows = [
        (2, {"number": "(312) 555-0150", "source": "billboard", "route": "one", "label": "I-90"}),
        (3, {"number": "not a number", "source": "billboard", "route": "one"}),
        (5, {"number": "+13125550150", "source": "billboard", "route": "one"}),
        (4, {"number": "+13125550151", "source": "billboard", "route": "nowhere"}),
        (6, {"number": "+13125550101", "source": "billboard", "route": "one"}),  # desk-1
    ]
    records, problems = check_rows(cfg, rows)
    assert [(r.number, r.source, r.route, r.label) for r in records] == [
        ("+13125550150", "billboard", "one", "I-90")
    ]
    assert [p.split(":")[0].strip() for p in problems] == ["line 3", "line 4", "line 5", "line 6"]
    assert "already on line 2" in problems[2]
    assert "unknown route 'nowhere'" in problems[1]
    assert "receiving number 'desk-1'" in problems[3]
