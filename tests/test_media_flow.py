"""Whisper, recording and voicemail in the call flow, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ctm_pbx.adapters.media import wav_seconds
from ctm_pbx.core.call.actions import DialStep, EnterQueue, FinishCall, Outcome, TakeMessage
from ctm_pbx.core.call.agi_plan import AgiStatus, plan_agi_call
from ctm_pbx.core.call.ari_flow import CallFlow
from ctm_pbx.core.call.events import (
    DialResult,
    DialReturned,
    Ended,
    Inbound,
)
from ctm_pbx.core.model import NumberInfo
from tests.helpers import config

CFG = config(
    """\
  whispered:
    type: single
    targets: [desk-1]
    whisper: {google-ads: ctm-pbx/whisper-google-ads, "*": ctm-pbx/whisper-call}
  ads-only: {type: single, targets: [desk-1], whisper: {google-ads: ctm-pbx/ads}}
  recorded: {type: sequential, targets: [desk-1, desk-2], record: true,
             fallback: {voicemail: ctm-pbx/voicemail}}
  vq: {type: queue, targets: [desk-1], record: true, whisper: ctm-pbx/whisper-call}
"""
)
T0 = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)


def inbound(route: str, source: str = "billboard") -> tuple[CallFlow, list]:
    flow = CallFlow(CFG)
    info = NumberInfo("+13125550142", source, None, route)
    return flow, flow.handle(Inbound(T0, "+13125550142", info, "+13125550100", None))


@pytest.mark.parametrize(
    ("route", "source", "dial"),
    [
        ("whispered", "google-ads", "PJSIP/phone1,20,U(ctm-whisper^ctm-pbx/whisper-google-ads)"),
        ("whispered", "billboard", "PJSIP/phone1,20,U(ctm-whisper^ctm-pbx/whisper-call)"),
        ("ads-only", "billboard", "PJSIP/phone1,20"),
        ("ads-only", "google-ads", "PJSIP/phone1,20,U(ctm-whisper^ctm-pbx/ads)"),
    ],
)
def test_whisper_by_source(route, source, dial) -> None:
    _, actions = inbound(route, source)
    assert [a.dial_args for a in actions if isinstance(a, DialStep)] == [dial]


def test_recorded_route_then_voicemail() -> None:
    flow, actions = inbound("recorded")
    assert [(a.dial_args, a.record) for a in actions if isinstance(a, DialStep)] == [
        ("PJSIP/phone1,20", True)
    ]
    flow.handle(DialReturned(T0 + timedelta(seconds=20), DialResult("NOANSWER", 20000)))
    last = flow.handle(DialReturned(T0 + timedelta(seconds=40), DialResult("NOANSWER", 20000)))
    assert [a for a in last if isinstance(a, TakeMessage)] == [
        TakeMessage("ctm-pbx/voicemail", 120)
    ]
    done = flow.handle(Ended(T0 + timedelta(seconds=70), DialResult("", cause=16)))
    fin = next(a for a in done if isinstance(a, FinishCall))
    assert fin.outcome is Outcome.VOICEMAIL and fin.voicemail
    assert not fin.recorded, "nobody answered: nothing was recorded"
    assert any("voicemail" in p for p in fin.path)


def test_recorded_and_answered() -> None:
    flow, _ = inbound("recorded")
    done = flow.handle(
        Ended(T0 + timedelta(seconds=30), DialResult("ANSWER", 30000, 25000, 16, "phone1"))
    )
    fin = next(a for a in done if isinstance(a, FinishCall))
    assert fin.outcome is Outcome.ANSWERED and fin.recorded and not fin.voicemail


def test_queue_whisper_and_recording() -> None:
    _, actions = inbound("vq")
    enter = next(a for a in actions if isinstance(a, EnterQueue))
    assert (enter.whisper, enter.record) == ("ctm-pbx/whisper-call", True)


def test_voicemail_needs_ari_mode() -> None:
    info = NumberInfo("+13125550142", "billboard", None, "recorded")
    plan = plan_agi_call(CFG, info, "+13125550142", {}, now=T0)
    assert plan.status == AgiStatus.NEEDS_ARI and "voicemail" in plan.reason


def test_wav_seconds(tmp_path) -> None:
    import wave

    path = tmp_path / "m.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(2 * 12000))
    assert wav_seconds(str(path)) == 1.5
    raw = tmp_path / "open.wav"  # a header not yet final: the size tells
    raw.write_bytes(b"RIFF" + bytes(40) + bytes(16000))
    assert wav_seconds(str(raw)) == 1.0
    assert wav_seconds(str(tmp_path / "none.wav")) is None
