"""Queue routes: the call flow around Asterisk's Queue(), and the queues ctm-pbx writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from ctm_pbx.adapters.asterisk_conf import render_queues
from ctm_pbx.core.call.actions import (
    DialStep,
    EnterQueue,
    FinishCall,
    FinishStep,
    Outcome,
    RecordQueue,
    StartStep,
)
from ctm_pbx.core.call.ari_flow import CallFlow
from ctm_pbx.core.call.events import (
    DialResult,
    Ended,
    Inbound,
    QueueResult,
    QueueReturned,
)
from ctm_pbx.core.model import NumberInfo
from ctm_pbx.edges.cli import main
from tests.helpers import BASE, config

QUEUES = """\
  support-q:
    type: queue
    strategy: wrandom
    targets: [desk-1, {receiving_number: desk-2, weight: 4}]
    ring_timeout: 12
    max_wait: 90
    max_length: 5
    wrapup: 10
    announce_every: 30
    periodic_prompt: ctm-pbx/please-hold
    priority_by_source: {google-ads: 10}
    fallback: {route: one}
"""
CFG = config(QUEUES)
T0 = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)


def start(source: str = "billboard") -> tuple[CallFlow, list]:
    flow = CallFlow(CFG)
    info = NumberInfo("+13125550142", source, None, "support-q")
    return flow, flow.handle(Inbound(T0, "+13125550142", info, "+13125550100", None))


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


@pytest.mark.parametrize(("source", "priority"), [("billboard", 0), ("google-ads", 10)])
def test_entering_the_queue(source, priority) -> None:
    _, actions = start(source)
    step = next(a for a in actions if isinstance(a, StartStep))
    assert [r.name for r in step.rings] == ["desk-1", "desk-2"]
    enter = next(a for a in actions if isinstance(a, EnterQueue))
    assert enter == EnterQueue("ctm-support-q", priority, 90)
    assert enter.extension() == f"Qctm-support-q.{priority}.90"


def test_agent_answers() -> None:
    flow, _ = start()
    res = QueueResult(status="", wait_seconds=7, position=2, agent="desk-2")
    actions = flow.handle(Ended(at(67), DialResult("", cause=16), queue=res))
    fin = next(a for a in actions if isinstance(a, FinishStep))
    assert [(r.name, r.result) for r in fin.results] == [
        ("desk-1", "cancelled"),
        ("desk-2", "answered"),
    ]
    assert fin.dial_status == "QUEUE_CONNECTED" and fin.talk_seconds == 60.0
    assert next(a for a in actions if isinstance(a, RecordQueue)) == RecordQueue(
        "support-q", "CONNECTED", 7.0, 2, "desk-2"
    )
    call = next(a for a in actions if isinstance(a, FinishCall))
    assert call.outcome is Outcome.ANSWERED and call.answered_by == "desk-2"
    assert call.answered_at == "2026-11-30T16:00:07.000Z" and call.talk_seconds == 60.0


def test_caller_gives_up_waiting() -> None:
    flow, _ = start()
    actions = flow.handle(Ended(at(40), DialResult(""), queue=QueueResult(position=3)))
    call = next(a for a in actions if isinstance(a, FinishCall))
    assert call.outcome is Outcome.ABANDONED
    rec = next(a for a in actions if isinstance(a, RecordQueue))
    assert (rec.status, rec.wait_seconds, rec.position) == ("ABANDONED", 40.0, 3)


@pytest.mark.parametrize(
    ("status", "ring_result"), [("TIMEOUT", "no_answer"), ("FULL", "busy"), ("JOINEMPTY", "busy")]
)
def test_overflow_runs_the_fallback(status, ring_result) -> None:
    flow, _ = start()
    actions = flow.handle(QueueReturned(at(90), QueueResult(status, 90, 1)))
    fin = next(a for a in actions if isinstance(a, FinishStep))
    assert {r.result for r in fin.results} == {ring_result}
    assert fin.dial_status == f"QUEUE_{status}"
    assert [a.dial_args for a in actions if isinstance(a, DialStep)] == ["PJSIP/phone1,10"]
    ended = flow.handle(Ended(at(95), DialResult("NOANSWER", 5000, 0, 19)))
    # the fallback's phone did not answer either: no_answer (it outranks busy)
    assert next(a for a in ended if isinstance(a, FinishCall)).outcome.value == "no_answer"


def test_render_queues() -> None:
    text = render_queues(CFG)
    assert "[ctm-support-q]" in text
    for line in (
        "strategy = wrandom",
        "timeout = 12",
        "wrapuptime = 10",
        "maxlen = 5",
        "announce-frequency = 30",
        "periodic-announce = ctm-pbx/please-hold",
        "member => PJSIP/phone1,1,desk-1",
        "member => PJSIP/phone2,4,desk-2",  # wrandom: the weight is the member's penalty
        "setinterfacevar = yes",
        "setqueueentryvar = yes",
        "ringinuse = no",
    ):
        assert line in text.splitlines(), line
    assert render_queues(config()).count("[") == 0, "no queue routes, no queues"
    trunk = render_queues(config("  q: {type: queue, targets: [mobile]}\n"))
    assert "member => PJSIP/+13125550109@carrier,0,mobile,Custom:ctm-mobile" in trunk


def test_cli_writes_the_queues(tmp_path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(BASE + QUEUES)
    out = tmp_path / "queues_ctm.conf"
    result = CliRunner().invoke(
        main, ["--config", str(cfg), "asterisk", "queues", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "[ctm-support-q]" in out.read_text()
    bad = CliRunner().invoke(
        main, ["--config", str(cfg), "asterisk", "queues", "--out", str(tmp_path / "no" / "x")]
    )
    assert bad.exit_code == 1 and "cannot write" in bad.output
