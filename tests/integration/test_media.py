"""Whisper, call recording and voicemail against the real Asterisk."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from .ctm import DIDS, RECORDINGS, wait_call
from .sip import Carrier

pytestmark = pytest.mark.integration


def wait_media(db_path: str, number: str, column: str, timeout_s: float = 8) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        row = wait_call(db_path, tracking_number=number)
        if row[column] is not None or time.monotonic() > deadline:
            return row
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("did", "number", "whisper_s"),
    [("whispered", "+13125550220", 1.9), ("whispered-ads", "+13125550221", 1.8)],
)
def test_whisper_plays_to_the_agent_before_the_caller_is_connected(
    ctm, phone_factory, carrier: Carrier, did, number, whisper_s
) -> None:
    phone = phone_factory("phone1", "answer", ring_ms=100)
    call = carrier.place_call(DIDS[did], "call", hold_ms=300)
    assert call.success, call.describe()
    assert phone.wait_for("ANSWERED")
    # the phone answered after 0.1 s; the caller got its 200 OK only after the whisper
    # (the call lasts ring + whisper + 0.3 s of talk), hearing ringing (180) meanwhile
    assert 180 in call.codes
    assert call.elapsed_s >= whisper_s + 0.3, call.describe()
    row = ctm.call(tracking_number=number)
    assert row["answered_by"] == "desk-1" and row["outcome"] == "answered"


def test_no_whisper_connects_at_once(ctm, phone_factory, carrier: Carrier) -> None:
    phone_factory("phone1", "answer", ring_ms=100)
    call = carrier.place_call(DIDS["single"], "call", hold_ms=300)
    assert call.success and call.elapsed_s < 1.5, call.describe()


def test_recorded_call(ctm, phone_factory, carrier: Carrier) -> None:
    phone_factory("phone1", "answer", ring_ms=100)
    call = carrier.place_call(DIDS["recorded"], "dtmf_2833", digits="1", gap_ms=300, hold_ms=1500)
    assert call.success, call.describe()
    row = wait_media(ctm.config.database.path, "+13125550222", "recording_path")
    assert row["recording_path"].startswith("/var/spool/asterisk/monitor/ctm-")
    local = RECORDINGS / Path(row["recording_path"]).name
    assert local.stat().st_size > 8000, "a non-empty recording"
    # MixMonitor writes the audio that flows: the caller's second of speech (the pcap)
    assert 0.5 <= row["recording_seconds"] <= row["talk_seconds"] + 1


def test_voicemail(ctm, phone_factory, carrier: Carrier) -> None:
    phone_factory("phone4", "noanswer")
    # audio ("~") during the greeting, then twice during the message; then silence
    call = carrier.place_call(
        DIDS["to-voicemail"], "dtmf_2833", digits="~~~", gap_ms=1500, hold_ms=4000
    )
    assert call.success, call.describe()
    row = wait_media(ctm.config.database.path, "+13125550223", "voicemail_path")
    assert row["outcome"] == "voicemail" and row["answered_by"] is None
    assert row["voicemail_path"].endswith(".wav") and "ctm-vm-" in row["voicemail_path"]
    local = RECORDINGS / Path(row["voicemail_path"]).name
    assert local.stat().st_size > 1000, "a non-empty message"
    assert row["voicemail_seconds"] > 0.3
    assert any("voicemail" in p for p in row["path"])
