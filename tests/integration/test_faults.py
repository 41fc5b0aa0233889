"""Faults at load through the real Asterisk: no call goes untracked.

Calls at 10/s, each from its own number to a pool number a website visitor holds,
matched across the phones and the call log (tests/integration/fault_run.py):

- the daemon killed with SIGKILL mid-run and started again 2 s later;
- Asterisk stopped mid-run and started again 2 s later (the daemon stays up).

Every call a phone answered has exactly one row with the outcome and the answering
phone the phone saw; the calls the fail-safe took while ctm-pbx was away are in the
call log (from the dialplan's call spool) with the visitor's attribution, computed
late; after Asterisk's restart ctm-pbx is back within a second of ARI answering.
"""

from __future__ import annotations

import pytest

from .fault_run import run_fault
from .sip import Asterisk

pytestmark = pytest.mark.integration


def check(report) -> None:  # noqa: ANN001 - FaultReport
    detail = f"{report.as_dict()}"
    print(detail)  # the figures, with -s
    assert report.in_progress == 0, detail
    assert report.duplicates == 0, detail
    assert report.missing == 0, detail
    assert report.wrong == 0, detail
    assert report.not_attributed_late == 0, detail


def test_daemon_killed_at_load_loses_no_call(asterisk: Asterisk, tmp_path) -> None:
    report = run_fault("kill", asterisk, tmp_path / "kill", rate=10, seconds=6, fault_at=2.0)
    check(report)
    # the phones answered every call: the routed ones and the fail-safe's while we were away
    assert report.reached_phone + report.took_failsafe == report.placed, report.as_dict()
    assert report.took_failsafe > 0, report.as_dict()
    assert report.failsafe_rows >= report.took_failsafe, report.as_dict()
    assert report.rows == report.placed, report.as_dict()


def test_asterisk_restart_at_load_loses_no_call(asterisk: Asterisk, tmp_path) -> None:
    report = run_fault("asterisk", asterisk, tmp_path / "restart", rate=10, seconds=8)
    check(report)
    assert report.reconnect_s is not None and report.reconnect_s <= 1.0, report.as_dict()
    assert asterisk.ari_ready(), "the sandbox is left running"
