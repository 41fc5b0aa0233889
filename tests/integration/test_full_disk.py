"""A full disk under the daemon, against the real Asterisk: the database on a small
tmpfs, filled with a file while calls come in (AGI and ARI mode, one recorded). The
calls are routed and answered; their rows (and the recording) appear once the file is
removed."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctm_pbx.adapters.ari_calls import MEDIA_SETTLE_S

from .ctm import AGI_DIDS, DIDS, ThreadDaemon, write_config
from .fault_run import fill_disk
from .sip import Asterisk, Carrier

pytestmark = pytest.mark.integration


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "disk"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(root)], check=True)
    try:
        yield root
    finally:
        (root / "filler").unlink(missing_ok=True)
        subprocess.run(["umount", "-l", str(root)], check=False)


@pytest.fixture
def ctm(asterisk: Asterisk, disk: Path) -> Iterator[ThreadDaemon]:
    daemon = ThreadDaemon(write_config(disk), asterisk).start()
    deadline = time.monotonic() + 10
    while not daemon.daemon.agi.ami.connected.is_set():
        assert time.monotonic() < deadline, "AMI did not connect"
        time.sleep(0.02)
    yield daemon
    daemon.stop()


def test_calls_on_a_full_disk_are_routed_and_logged_once_space_returns(
    ctm, disk: Path, phone_factory, carrier: Carrier
) -> None:
    fill_disk(disk)
    phone_factory("phone1", "answer", ring_ms=200)
    agi = carrier.place_call(AGI_DIDS["single"], "call", hold_ms=400)
    assert agi.success, agi.describe()
    ari = carrier.place_call(DIDS["single"], "call", hold_ms=400)
    assert ari.success, ari.describe()
    recorded = carrier.place_call(DIDS["recorded"], "dtmf_2833", digits="1", hold_ms=1000)
    assert recorded.success, recorded.describe()
    time.sleep(MEDIA_SETTLE_S + 0.5)  # its recording is linked while the row still waits
    status = ctm.daemon.status()
    assert status["db_writable"] is False and status["db_writes_waiting"] >= 3, status
    assert "full" in status["db_write_error"]
    (disk / "filler").unlink()
    for tracking_number, mode in (("+13125550160", "agi"), ("+13125550142", "ari")):
        row = ctm.call(tracking_number=tracking_number, timeout_s=20)
        assert row["mode"] == mode and row["source"] == "billboard"
        assert row["outcome"] == "answered" and row["answered_by"] == "desk-1"
        assert [leg["result"] for leg in row["legs"]] == ["answered"]
    row = ctm.call(tracking_number="+13125550222", timeout_s=20)
    assert row["outcome"] == "answered" and row["recording_path"].endswith(".wav")
    assert ctm.daemon.status()["db_writable"] is True
