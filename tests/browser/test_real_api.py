"""swap.js against the real tracking API (not the fake), from a site on another origin.

The site and the API listen on two loopback ports, so the browser makes a real
cross-origin request and the API's own CORS answer decides whether the script may
read it (``web.allowed_origins``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from ctm_pbx.adapters.config_loader import parse_config
from ctm_pbx.adapters.store import migrate
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.edges.cli import sync_config_numbers
from ctm_pbx.edges.web import VisitApi, create_app
from tests.browser.pages import ThreadedServers
from tests.chromium import visitor_context

CONFIG = """\
web: {{allowed_origins: ["{site}"]}}
sources:
  google-ads: {{preset: google_ads}}
  direct: {{preset: direct}}
targets:
  sales: "+1 312 555 0100"
pools:
  gads: {{source: google-ads}}
receiving_numbers:
  desk: {{number: "+13125550101", dial: "PJSIP/phone1"}}
routes:
  main: {{type: single, targets: [desk]}}
tracking_numbers:
  - {{number: "+13125550150", pool: gads, route: main}}
  - {{number: "+13125550151", pool: gads, route: main}}
"""

PAGE = """<!doctype html><html><head><meta charset="utf-8">
<script async src="{api}/swap.js"></script></head>
<body><p id="phone">Call us: <a href="tel:+13125550100">(312) 555-0100</a></p></body></html>"""


class RealServers(ThreadedServers):
    """The real web app (config, SQLite store) and two sites: one allowed, one not."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
        self.other = ""
        self.writer: StoreWriter | None = None

    async def _start(self) -> None:
        async def page(request: web.Request) -> web.Response:
            return web.Response(text=PAGE.format(api=self.api), content_type="text/html")

        for attr in ("site", "other"):
            app = web.Application()
            app.router.add_get("/{name:.*}", page)
            setattr(self, attr, await self._listen(app))
        cfg = parse_config(CONFIG.format(site=self.site), env={}, base_dir=self.directory)
        self.writer = StoreWriter(str(self.directory / "ctm.db"))
        self.writer.run_sync(migrate)
        self.writer.run_sync(lambda db: sync_config_numbers(cfg, db))
        self.api = await self._listen(create_app(dict, VisitApi(cfg, self.writer)))

    def stop(self) -> None:
        super().stop()
        if self.writer is not None:
            self.writer.close()


@pytest.fixture(scope="module")
def real() -> Iterator[RealServers]:
    with tempfile.TemporaryDirectory(prefix="ctm-real-api-") as tmp:
        servers = RealServers(Path(tmp))
        servers.start()
        yield servers
        servers.stop()


def shown(browser, url: str, pages: int = 1) -> list[tuple[str, str, object]]:
    """In a fresh profile: per page, (text, tel: href, CTM.ready)."""
    context = visitor_context(browser)
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        out = []
        for n in range(pages):
            page.goto(url if n == 0 else url.split("?")[0] + f"next{n}")
            page.wait_for_function("() => window.CTM")
            ready = page.evaluate("() => CTM.ready")
            link = page.locator("#phone a")
            out.append((link.inner_text(), link.get_attribute("href"), ready))
        return out
    finally:
        context.close()


def test_an_allowed_site_swaps_numbers_from_the_real_pool(browser, real: RealServers) -> None:
    one = shown(browser, f"{real.site}/landing?gclid=REAL1", pages=2)
    two = shown(browser, f"{real.site}/landing?gclid=REAL2")
    (text1, href1, ready1), (again_text, again_href, _) = one
    assert ready1 == {"+13125550100": href1.removeprefix("tel:")}
    assert href1 in ("tel:+13125550150", "tel:+13125550151")
    assert text1 == f"(312) 555-{href1[-4:]}", "written in the page's own format"
    assert (again_text, again_href) == (text1, href1), "the visitor keeps its number"
    assert two[0][1] != href1, "another profile, another pool number"


def test_a_site_that_is_not_allowed_keeps_its_numbers(browser, real: RealServers) -> None:
    ((text, href, ready),) = shown(browser, f"{real.other}/landing?gclid=OTHER")
    assert ready is None, "the browser refused the API's answer (no CORS header for it)"
    assert (text, href) == ("(312) 555-0100", "tel:+13125550100")


def test_the_browser_gets_the_script_gzipped_and_runs_it(browser, real: RealServers) -> None:
    context = visitor_context(browser)  # a headless UA is a crawler: no pool number
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        with page.expect_response(lambda r: r.url.endswith("/swap.js")) as script:
            page.goto(f"{real.site}/landing?gclid=GZIP1")
        headers = script.value.all_headers()
        assert headers["content-encoding"] == "gzip" and headers["vary"] == "Accept-Encoding"
        assert int(headers["content-length"]) < 3000
        page.wait_for_function("() => window.CTM")
        ready = page.evaluate("() => CTM.ready")
        assert page.locator("#phone a").get_attribute("href") == "tel:" + ready["+13125550100"]
    finally:
        context.close()


def leases_of(real: RealServers, visitor_id: str) -> list[dict]:
    def read(db):
        cur = db.conn.execute(
            "SELECT number, last_active_at, closed_at FROM leases WHERE visitor_id = ?",
            (visitor_id,),
        )
        return [dict(zip(("number", "last_active_at", "closed_at"), r, strict=True)) for r in cur]

    assert real.writer is not None
    return real.writer.run_sync(read)


def test_a_page_that_closes_is_closed_in_the_store_and_reopens(browser, real: RealServers):
    """The page's close beacon reaches the real API: the lease's ``closed_at`` is set, and
    the visitor's next page renews the lease past it (reopened)."""
    context = visitor_context(browser)
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        page.goto(f"{real.site}/landing?gclid=CLOSE1")
        page.wait_for_function("() => window.CTM")
        ready = page.evaluate("() => CTM.ready")
        vid = page.evaluate("() => localStorage.getItem('ctm_vid')")
        assert ready and vid
        (held,) = leases_of(real, vid)
        assert held["closed_at"] is None
        page.wait_for_timeout(2500)  # past the API's grace after the lease's last activity
        page.goto("about:blank")  # pagehide: the beacon
        for _ in range(100):
            (held,) = leases_of(real, vid)
            if held["closed_at"]:
                break
            page.wait_for_timeout(50)
        assert held["closed_at"] and held["closed_at"] >= held["last_active_at"]
        assert held["number"] == ready["+13125550100"]

        page.goto(f"{real.site}/next")  # the same visitor's next page
        page.wait_for_function("() => window.CTM")
        assert page.evaluate("() => CTM.ready") == ready
        for _ in range(100):  # a page view answered from memory is written a moment later
            (again,) = leases_of(real, vid)
            if again["last_active_at"] > again["closed_at"]:
                break
            page.wait_for_timeout(50)
        assert again["last_active_at"] > again["closed_at"], "the renewal reopened it"
    finally:
        context.close()


def visit_row(real: RealServers, visitor_id: str) -> dict:
    def read(db):
        cur = db.conn.execute(
            "SELECT time_zone, language, ga_client_id, ga_session_id FROM visits"
            " WHERE visitor_id = ? ORDER BY started_at",
            (visitor_id,),
        )
        return dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))

    assert real.writer is not None
    return real.writer.run_sync(read)


def test_the_browser_s_time_zone_language_and_ga_ids_are_stored(browser, real: RealServers):
    context = visitor_context(browser, timezone_id="America/Chicago", locale="es-US")
    context.set_default_timeout(10_000)
    try:
        context.add_cookies(
            [
                {"name": "_ga", "value": "GA1.1.987654321.1700000001", "url": real.site},
                {"name": "_ga_Q1W2E3R4", "value": "GS2.1.s1746825999$o1$g0", "url": real.site},
            ]
        )
        page = context.new_page()
        page.goto(f"{real.site}/landing?gclid=ZONE1")
        page.wait_for_function("() => window.CTM")
        assert page.evaluate("() => CTM.ready")
        vid = page.evaluate("() => localStorage.getItem('ctm_vid')")
        row = visit_row(real, vid)
        assert row == {
            "time_zone": "America/Chicago",
            "language": "es-US",
            "ga_client_id": "987654321.1700000001",
            "ga_session_id": "1746825999",
        }
    finally:
        context.close()
