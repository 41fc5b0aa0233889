"""The daemon's wiring, without Asterisk: ARI unreachable (it keeps retrying), the
store and the web app live on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import unused_port
from click.testing import CliRunner

from ctm_pbx.adapters.config_loader import load_config
from ctm_pbx.edges.cli import main
from ctm_pbx.edges.daemon import Daemon
from tests.helpers import BROWSER_UA

SHOP = "https://shop.example.com"
POOL = ("+13125550150", "+13125550151")
CONFIG = """\
asterisk: {{ari_url: "http://127.0.0.1:{ari_port}", username: u, password: p}}
database: {{path: ctm.db}}
web: {{host: 127.0.0.1, port: {web_port}, allowed_origins: ["{shop}"]}}
dashboard: {{host: 127.0.0.1, port: {dash_port}}}
sources:
  google-ads: {{preset: google_ads}}
targets:
  sales: "+1 312 555 0100"
pools:
  gads: {{source: google-ads}}
receiving_numbers:
  desk: {{number: "+13125550101", dial: "PJSIP/phone1"}}
routes:
  main: {{type: single, targets: [desk]}}
"""


def cli(config_path: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--config", str(config_path), *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    web_port, dash_port = unused_port(), unused_port()
    config_path = tmp_path / "config.yaml"
    config_path.write_text(
        CONFIG.format(ari_port=unused_port(), web_port=web_port, dash_port=dash_port, shop=SHOP)
    )
    cli(config_path, "db", "migrate")
    for number in POOL:
        cli(config_path, "numbers", "add", number, "--pool", "gads", "--route", "main")
    d = Daemon(load_config(config_path))
    serving = asyncio.create_task(d.serve())
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            try:
                async with http.get(f"http://127.0.0.1:{web_port}/healthz"):
                    break  # it answers (503 while ARI is away)
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the daemon's web app did not come up")
    d.web_url = f"http://127.0.0.1:{web_port}"  # type: ignore[attr-defined]
    d.dashboard_url = f"http://127.0.0.1:{dash_port}"  # type: ignore[attr-defined]
    d.config_path = config_path  # type: ignore[attr-defined]
    yield d
    d.stop.set()
    await asyncio.wait_for(serving, 10)


async def visit(d: Daemon, landing: str, visitor_id: str | None = None) -> dict:
    body = {"visitor_id": visitor_id, "landing_url": landing, "referrer": ""}
    url = f"{d.web_url}/api/visit"  # type: ignore[attr-defined]
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json=body, headers={"Origin": SHOP, "User-Agent": BROWSER_UA}) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_a_number_released_while_running_is_not_shown_again(daemon: Daemon) -> None:
    first = await visit(daemon, f"{SHOP}/?gclid=wired")
    number = first["numbers"]["+13125550100"]["number"]
    again = await visit(daemon, f"{SHOP}/pricing", first["visitor_id"])
    assert again["numbers"]["+13125550100"]["number"] == number, "remembered"

    # the admin releases it (another process: the CLI)
    await asyncio.to_thread(cli, daemon.config_path, "numbers", "release", number)  # type: ignore[attr-defined]
    await daemon.inventory.refresh()  # what the daemon's housekeeping does every second
    moved = await visit(daemon, f"{SHOP}/contact", first["visitor_id"])
    assert moved["numbers"]["+13125550100"]["number"] not in (number, "+13125550100")


async def test_health_says_ari_is_away_and_the_web_api_stays_ready(daemon: Daemon) -> None:
    url = f"{daemon.web_url}/healthz"  # type: ignore[attr-defined]
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            health = await resp.json()
        async with http.get(f"{url}/calls") as calls:
            assert calls.status == 503, "the call path is not ready without ARI"
    assert resp.status == 200, "a load balancer keeps the website API while ARI is away"
    assert resp.headers["Server"] == "ctm-pbx"
    assert health["status"] == "degraded" and health["ready"] == {"web_api": True, "calls": False}
    assert health["ari_connected"] is False and health["tracking_numbers"] == 2
    parts = health["components"]
    assert parts["ari"] == {"ok": False, "connected": False}
    db = parts["database"]
    assert db["ok"] and db["running"] and db["backlog"] >= 0
    assert db["last_commit_age_s"] is not None and db["last_commit_age_s"] >= 0
    assert parts["web"]["connections"] >= 1 and parts["web"]["max_connections"] > 0


def test_sighup_reloads_the_config_and_an_invalid_file_changes_nothing(tmp_path: Path) -> None:
    """``systemctl reload`` (SIGHUP): an invalid file is refused with every problem
    logged at its line, the daemon running on; a valid one is in force at once."""
    web_port = unused_port()
    config_path = tmp_path / "config.yaml"
    base = CONFIG.format(
        ari_port=unused_port(), web_port=web_port, dash_port=unused_port(), shop=SHOP
    )
    config_path.write_text(base)
    cli(config_path, "db", "migrate")
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ctm_pbx", "--config", str(config_path), "run"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def health() -> dict:
        url = f"http://127.0.0.1:{web_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:  # 503 while ARI is away: the body says
            return json.loads(exc.read())

    def hup_until(text: bytes) -> str:
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while text not in log.read_bytes():
            assert proc.poll() is None, f"HUP killed the daemon:\n{log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)
        return log.read_text()

    try:
        deadline = time.monotonic() + 20
        while b"ctm-pbx running" not in log.read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert health()["tracking_numbers"] == 0

        broken = base.replace("targets: [desk]", "targets: [desk-9]")
        broken += "  other: {type: single, targets: [desk], ring_timeout: -1}\n"
        config_path.write_text(broken)
        text = hup_until(b"the running config stays")
        assert "2 problem(s)" in text, text[-2000:]
        assert "config.yaml:14: routes.main.targets[0]: unknown receiving number 'desk-9'" in text
        assert "config.yaml:15: routes.other.ring_timeout:" in text
        assert health()["tracking_numbers"] == 0, "nothing changed"

        config_path.write_text(
            base.replace("sources:", "sources:\n  radio: {kind: offsite}")
            + 'tracking_numbers:\n  - {number: "+13125550160", source: radio, route: main}\n'
        )
        text = hup_until(b"config reloaded")
        assert "config numbers: 1 added, 0 updated, 0 released" in text
        assert health()["tracking_numbers"] == 1, "the new number is routed from now on"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    assert proc.returncode == 0


def test_the_open_files_limit_is_raised_to_the_hard_limit() -> None:
    """From a shell's 1,024 (here 256) to what the system allows the process."""
    script = (
        "import resource\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "from ctm_pbx.edges.daemon import raise_fd_limit\n"
        "assert raise_fd_limit() == hard == resource.getrlimit(resource.RLIMIT_NOFILE)[0]\n"
        "print(hard)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 256


async def test_the_dashboard_has_its_own_listener_and_asks_for_a_login(daemon: Daemon) -> None:
    url = daemon.dashboard_url  # type: ignore[attr-defined]
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"].startswith("/login?next=")
        async with http.get(f"{url}/login") as resp:
            assert resp.status == 200 and "Log in" in await resp.text()
        # and the visitor API's port has no dashboard
        async with http.get(f"{daemon.web_url}/login") as resp:  # type: ignore[attr-defined]
            assert resp.status == 404


def test_the_daemon_runs_on_uvloop(monkeypatch) -> None:
    """``run_daemon`` serves on uvloop's loop (a seventh less CPU per AGI call)."""
    import uvloop

    from ctm_pbx.edges import daemon as daemon_mod

    loops: list[asyncio.AbstractEventLoop] = []

    class Recorder:
        def __init__(self, config) -> None:
            self.stop = asyncio.Event()
            self.reloader = self  # SIGHUP's handler: request()

        def request(self) -> None:
            pass

        async def serve(self) -> None:
            loops.append(asyncio.get_running_loop())

    monkeypatch.setattr(daemon_mod, "Daemon", Recorder)
    daemon_mod.run_daemon(object())
    assert len(loops) == 1 and isinstance(loops[0], uvloop.Loop)


async def test_what_the_start_made_is_left_out_of_the_collectors_passes(daemon: Daemon) -> None:
    import gc

    await asyncio.wait_for(daemon.warmed.wait(), 30)
    try:
        assert gc.get_freeze_count() > 10_000  # modules, config, the geocoder's data
    finally:
        gc.unfreeze()  # the next tests' objects are theirs to collect
