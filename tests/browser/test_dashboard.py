"""The dashboard in real Chromium: log in, every page at desktop and phone width (with a
screenshot under tests/artifacts/), filter the log, open a call, play its recording,
tag it, log out."""

from __future__ import annotations

import asyncio
import re
import wave
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import expect

from ctm_pbx.adapters.config_loader import parse_config
from ctm_pbx.adapters.store import demo as demo_store
from ctm_pbx.adapters.store import migrate, open_db
from ctm_pbx.adapters.store import users as user_store
from ctm_pbx.adapters.store.reader import StoreReader
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.core.clock import iso
from ctm_pbx.core.demo import demo_calls
from ctm_pbx.core.users import Role
from ctm_pbx.edges.dashboard import Dashboard, create_dashboard_app
from tests.browser.pages import ThreadedServers

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
EXAMPLE = (REPO / "config.example.yaml").read_text(encoding="utf-8")
PASSWORD = "a long dashboard password"
SIZES = {"desktop": {"width": 1400, "height": 900}, "phone": {"width": 390, "height": 844}}


class DashboardServer(ThreadedServers):
    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory

    async def _start(self) -> None:
        rec = self.directory / "rec"
        cfg = parse_config(
            EXAMPLE.replace("# local_dir: /srv/asterisk/monitor", f"local_dir: {rec}"),
            env={"ARI_PASSWORD": "x", "AMI_SECRET": "x"},
            base_dir=self.directory,
        )
        self.config = cfg
        self.writer = StoreWriter(cfg.database.path)
        self.reader = StoreReader(cfg.database.path)
        dash = Dashboard(cfg, self.reader, self.writer)
        self.api = await self._listen(create_dashboard_app(dash))

    def write(self, fn):
        """Run ``fn(db)`` on the server's writer, from the test's thread."""
        return asyncio.run_coroutine_threadsafe(self.writer.run(fn), self.loop).result(10)

    async def _stop(self) -> None:
        await super()._stop()
        self.reader.close()
        self.writer.close()


def _wav(path: Path, seconds: float) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x10\x00\xf0\xff" * int(4000 * seconds))


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[DashboardServer]:
    directory = tmp_path_factory.mktemp("dashboard")
    cfg = parse_config(EXAMPLE, env={"ARI_PASSWORD": "x", "AMI_SECRET": "x"}, base_dir=directory)
    db = open_db(cfg.database.path)
    migrate(db)
    demo_store.seed_demo(db, demo_calls(cfg, now=datetime.now(UTC), days=40, calls=400))
    newest = db.execute("SELECT MAX(id) FROM calls WHERE outcome = 'answered'").fetchone()[0]
    db["calls"].update(newest, {"recording_path": "/var/spool/asterisk/monitor/ctm-9.1.wav",
                                "recording_seconds": 3.0})  # fmt: skip
    user_store.add_user(db, "admin", PASSWORD, Role.ADMIN, datetime.now(UTC))
    db.conn.close()
    (directory / "rec").mkdir()
    _wav(directory / "rec" / "ctm-9.1.wav", 3.0)
    running = DashboardServer(directory)
    running.start()
    running.recorded_call = newest  # type: ignore[attr-defined]
    yield running
    running.stop()


@pytest.fixture(params=list(SIZES))
def page(request, browser, server):
    ctx = browser.new_context(viewport=SIZES[request.param])
    ctx.set_default_timeout(10_000)
    tab = ctx.new_page()
    tab.size_name = request.param  # type: ignore[attr-defined]
    yield tab
    ctx.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}-{page.size_name}.png"), full_page=True)


def log_in(page, server) -> None:
    page.goto(f"{server.api}/calls")
    assert page.url.startswith(f"{server.api}/login?next=")
    shot(page, "login")
    page.fill("#username", "admin")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.api}/calls")


def no_horizontal_page_scroll(page) -> None:
    """Wide tables and charts scroll inside their boxes; the page itself fits."""
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the screen"


def test_a_session_through_every_page(page, server) -> None:
    log_in(page, server)
    page.goto(f"{server.api}/")
    assert page.locator("svg.chart").count() == 3
    assert page.get_by_text("Calls per day by source, last 30 days").count() >= 1
    no_horizontal_page_scroll(page)
    # the calls by source (their values at the bars' ends) and the weekday-by-hour map
    # show whole, on a phone too
    boxes = page.locator("section.chart-box:has(svg.chart.bars)")
    assert boxes.count() == 2
    assert boxes.evaluate_all("bs => bs.map(b => b.scrollWidth - b.clientWidth)") == [0, 0]
    shot(page, "overview")

    page.click("nav >> text=Sources")
    page.wait_for_url(f"{server.api}/sources")
    assert page.locator("table").count() == 2
    no_horizontal_page_scroll(page)

    # each pool's accuracy, and what the outbox holds per destination
    for path, name in (("/pools", "pools"), ("/outbox", "outbox")):
        page.goto(f"{server.api}{path}")
        assert page.locator("main h1").count() == 1
        no_horizontal_page_scroll(page)
        shot(page, name)
    shot(page, "sources")

    # the call log: a call that starts now appears without a reload, then ends
    page.goto(f"{server.api}/calls")
    expect(page.locator("#live-status")).to_have_text("live")
    call_id = server.write(lambda db: db["calls"].insert(
        {"status": "in_progress", "started_at": iso(datetime.now(UTC)), "source": "facebook",
         "tracking_number": "+13125550150", "caller_number": "+13125550999"}).last_pk)  # fmt: skip
    row = page.locator(f'tr[data-call="{call_id}"]')
    row.wait_for()
    assert "(312) 555-0999" in row.inner_text() and "in progress" in row.inner_text()
    server.write(lambda db: db["calls"].update(call_id, {"status": "completed",
                                                         "outcome": "answered"}))  # fmt: skip
    expect(row).to_contain_text("answered")

    # filtered by source with the form
    total = int(re.match(r"(\d+) calls", page.locator(".count").inner_text())[1])
    page.select_option("select[name=source]", "google-ads")
    page.click(".filters button[type=submit]")
    page.wait_for_url(re.compile(r".*source=google-ads.*"))
    filtered = int(re.match(r"(\d+) calls", page.locator(".count").inner_text())[1])
    assert 0 < filtered < total
    sources = page.locator("table.log tbody tr td:nth-child(4)").all_inner_texts()
    assert sources and set(sources) == {"google-ads"}
    no_horizontal_page_scroll(page)
    shot(page, "calls")

    # a call with a recording: the audio element loads it (through the session, with Range)
    page.goto(f"{server.api}/calls/{server.recorded_call}")
    duration = page.evaluate(
        """() => new Promise((ok, fail) => {
            const a = document.getElementById('recording');
            if (a.readyState >= 1) return ok(a.duration);
            a.addEventListener('loadedmetadata', () => ok(a.duration));
            a.addEventListener('error', () => fail('audio error ' + a.error.code));
            a.load();
        })"""
    )
    assert duration == pytest.approx(3.0, abs=0.1)

    # tag it
    page.fill("#tags", "Quote requested, vip")
    page.fill("#comment", "called back about the boiler")
    page.click(".annotate button[type=submit]")
    page.wait_for_url(re.compile(r".*saved=1"))
    assert page.locator("#tags").input_value() == "quote-requested, vip"
    no_horizontal_page_scroll(page)
    shot(page, "call")
    page.goto(f"{server.api}/calls?tag=vip")
    assert page.locator(".count").inner_text().startswith("1 call")

    # log out: the pages are closed again
    page.click(".logout button")
    page.wait_for_url(f"{server.api}/login")
    page.goto(f"{server.api}/")
    assert "/login" in page.url
