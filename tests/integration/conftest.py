"""Fixtures of the integration tests: the sandbox Asterisk, sipp phones, the carrier.

- ``asterisk`` (session): ``scripts/asterisk-sandbox up`` with the test endpoints
  (tests/asterisk/*.conf). Skipped without root/sipp/chroot/curl/debootstrap, except
  with CI=true where that is a failure. Stopped at the end of the session only if this
  session started it.
- ``phone_factory``: ``phone_factory("phone1", "answer", ring_ms=200)`` starts a test
  phone (a sipp UAS); every phone is stopped at the end of the test.
- ``carrier``: a ``Carrier`` (sipp UACs from the trunk's address) for the test.
- ``ctm``: ctm-pbx (``ThreadDaemon``) with the test config, stopped after the test.
- ``no_channels_left`` (autouse): after each test, no channel may be left in Asterisk.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .ctm import ThreadDaemon, render_test_queues, write_config
from .sip import REPO, Asterisk, Behaviour, Carrier, Phone

EXTRA_ETC = REPO / "tests" / "asterisk"

PhoneFactory = Callable[..., Phone]


def _missing_prerequisites() -> list[str]:
    missing = []
    if os.geteuid() != 0:
        missing.append("root (the sandbox uses debootstrap, chroot and mount)")
    for tool in ("sipp", "chroot", "curl"):
        if shutil.which(tool) is None:
            missing.append(tool)
    sandbox_dir = Path(os.environ.get("CTM_SANDBOX_DIR", "/var/lib/ctm-pbx-sandbox"))
    chroot_ready = (sandbox_dir / "root" / "usr" / "sbin" / "asterisk").exists()
    if shutil.which("debootstrap") is None and not chroot_ready:
        missing.append("debootstrap (or an existing sandbox chroot)")
    return missing


@pytest.fixture(scope="session")
def asterisk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Asterisk]:
    missing = _missing_prerequisites()
    if missing:
        reason = "integration tests need " + ", ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: these tests must run in CI)", pytrace=False)
        pytest.skip(reason)
    # the test endpoints and dialplan, and the queues of the test config's queue routes
    extra = tmp_path_factory.mktemp("asterisk-etc")
    for conf in EXTRA_ETC.glob("*.conf"):
        shutil.copy(conf, extra / conf.name)
    (extra / "queues_ctm.conf").write_text(render_test_queues(), encoding="utf-8")
    env = dict(os.environ, CTM_SANDBOX_EXTRA_ETC=str(extra))
    ast = Asterisk(env=env)
    was_running = ast.run_sandbox("status").returncode == 0
    # creating the chroot (first run on a machine) takes about a minute
    up = ast.run_sandbox("up", timeout_s=900)
    if up.returncode != 0:
        pytest.fail(
            f"scripts/asterisk-sandbox up failed ({up.returncode}):\n{up.stdout}\n{up.stderr}",
            pytrace=False,
        )
    try:
        yield ast
    finally:
        if not was_running:
            ast.run_sandbox("down", timeout_s=60)


@pytest.fixture(autouse=True)
def no_channels_left(asterisk: Asterisk) -> Iterator[None]:
    """No channel may be left after a test; leftovers are hung up so that the next test
    starts clean, and the test errors."""
    before = asterisk.wait_no_channels(timeout_s=5)
    if before:
        asterisk.hangup_all()
        asterisk.wait_no_channels(timeout_s=5)
    yield
    left = asterisk.wait_no_channels(timeout_s=5)
    if left:
        asterisk.hangup_all()
        pytest.fail(f"channels left in Asterisk after the test: {left}", pytrace=False)


@pytest.fixture
def phone_factory(asterisk: Asterisk, tmp_path: Path) -> Iterator[PhoneFactory]:
    phones: list[Phone] = []

    def make(name: str, behaviour: Behaviour = "answer", **kwargs: Any) -> Phone:
        workdir = tmp_path / "phones" / f"{len(phones):02d}-{name}"
        phone = Phone(name, behaviour, workdir=workdir, **kwargs)
        phones.append(phone)
        return phone.start()

    yield make
    for phone in phones:
        phone.stop()


@pytest.fixture
def ctm(asterisk: Asterisk, tmp_path: Path) -> Iterator[ThreadDaemon]:
    """ctm-pbx with the test config (tests/integration/ctm.py), in a thread of this process."""
    daemon = ThreadDaemon(write_config(tmp_path), asterisk).start()
    yield daemon
    daemon.stop()


@pytest.fixture
def carrier(asterisk: Asterisk, tmp_path: Path) -> Carrier:
    return Carrier(tmp_path / "carrier")
