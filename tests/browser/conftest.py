"""Fixtures of the browser tests: a fake ctm-pbx API, a test site, headless Chromium.

- ``servers`` (package): two aiohttp servers on 127.0.0.1 in one background thread:
  the **API** origin (``/swap.js``, ``/demo``, ``POST /api/visit``, ``/api/renew``, ``/api/close``)
  and the **site** origin (``tests/browser/site/*.html`` with ``__API__`` replaced by the
  API's origin, and a generated ``/big.html``). Two ports, so two origins: the script's
  calls are cross-origin, as on a real site.
- ``fake``: the API's state (``FakeApi``), reset for each test; tests set ``status``,
  ``delay``, ``renew_every_s``, ``omit`` and read ``calls``.
- ``browser`` (package: stopped before the other tests run, see the fixture): Debian's
  /usr/bin/chromium driven by Playwright (never ``playwright install``). Missing chromium
  or playwright skips, except with CI=true where it fails.
- ``context``/``page``: a fresh browser context (cookies, storage) per test.

The fake API follows the contract of the real one (see ``FakeApi``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web

try:
    from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

from tests.browser.pages import ThreadedServers, big_page  # noqa: E402
from tests.chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "ctm_pbx" / "edges" / "static"
SITE = Path(__file__).resolve().parent / "site"

# The fake's configuration: target number -> (tracking number format, first index).
# Visitor n (0, 1, 2 … in order of arrival) gets index first+n of every target.
TARGETS = {
    "+13125550100": ("+1312555{:04d}", 150),  # (312) 555-0150, 0151, …
    "+18005550199": ("+1800555{:04d}", 170),  # (800) 555-0170, …
    "+13125550110": ("+1312555{:04d}", 180),  # 312-555-0180, … (the demo's "support")
    "+442079460958": ("+4420794609{:02d}", 60),  # +44 20 7946 0960, …
}
VISITOR_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


def json_error(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status)


class FakeApi:
    """The swap API as the script sees it.

    ``POST /api/visit``, body (JSON, sent as ``text/plain``: a CORS simple request)
    ``{"visitor_id": str|null, "landing_url": str, "referrer": str, "page": str}``;
    ``POST /api/renew``, body ``{"visitor_id": str}``. Both answer 200
    ``{"visitor_id", "source", "rule", "numbers": {target: {"number", "pool", "shared"}},
    "expires_at", "renew_every_s"}``, or 4xx/5xx ``{"error", "message"}``. Every answer
    carries ``Access-Control-Allow-Origin: <the request's Origin>`` when that origin is
    allowed; ``OPTIONS`` answers a preflight (never needed by swap.js).
    ``POST /api/close`` (the page's beacon when hidden or left), body ``{"visitor_id": str}``,
    answers 200 ``{"closed": n}``.
    """

    def __init__(self) -> None:
        self.allowed_origins: set[str] = set()
        self.reset()

    def reset(self) -> None:
        self.visitors: dict[str, dict[str, str]] = {}
        self.order: list[str] = []  # visitor ids in order of arrival
        self.sources: dict[str, str | None] = {}
        self.calls: list[dict[str, Any]] = []
        self.closed: list[str] = []  # visitor ids of the close beacons
        self.status: int | None = None  # answer every API call with this error
        self.delay = 0.0  # seconds before answering
        self.renew_every_s: float = 60
        self.omit: set[str] = set()  # targets left out of "numbers"
        self.override: dict[str, str] = {}  # target -> number for everyone (an overflow)

    def calls_to(self, path: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["path"] == path and c["method"] == "POST"]

    def reassign(self, visitor_id: str, offset: int = 10) -> None:
        """Give the visitor other numbers from the next call on (as when its lease lapsed)."""
        n = self.order.index(visitor_id) + offset
        self.visitors[visitor_id] = {
            t: fmt.format(first + n) for t, (fmt, first) in TARGETS.items()
        }

    def _numbers_for(self, visitor_id: str) -> dict[str, str]:
        if visitor_id not in self.visitors:
            n = len(self.order)
            self.order.append(visitor_id)
            self.visitors[visitor_id] = {
                target: fmt.format(first + n) for target, (fmt, first) in TARGETS.items()
            }
        return self.visitors[visitor_id]

    @staticmethod
    def _source(landing_url: str, referrer: str) -> str | None:
        query = parse_qs(urlsplit(landing_url).query)
        if "gclid" in query or (
            query.get("utm_source") == ["google"] and query.get("utm_medium") == ["cpc"]
        ):
            return "google-ads"
        if "google." in urlsplit(referrer).netloc:
            return "google-organic"
        return None

    def _answer(self, visitor_id: str) -> dict[str, Any]:
        source = self.sources.get(visitor_id)
        numbers = {
            target: {
                "number": self.override.get(target, number),
                "pool": source or "website",
                "shared": target in self.override,
            }
            for target, number in self._numbers_for(visitor_id).items()
            if target not in self.omit
        }
        expires = datetime.now(UTC) + timedelta(seconds=max(self.renew_every_s * 2, 60))
        return {
            "visitor_id": visitor_id,
            "source": source,
            "rule": source or "default",
            "numbers": numbers,
            "expires_at": expires.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "renew_every_s": self.renew_every_s,
        }

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.text())
        except ValueError:
            body = None
        self.calls.append(
            {
                "method": request.method,
                "path": request.path,
                "body": body,
                "content_type": request.headers.get("Content-Type"),
                "origin": request.headers.get("Origin"),
                "cookie": request.headers.get("Cookie"),
            }
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        if not isinstance(body, dict):
            raise _Reject(json_error(400, "bad_request", "the body must be a JSON object"))
        visitor_id = body.get("visitor_id")
        if visitor_id is not None and not (
            isinstance(visitor_id, str) and VISITOR_ID.fullmatch(visitor_id)
        ):
            raise _Reject(json_error(400, "bad_visitor_id", "visitor_id: 8-64 of [A-Za-z0-9_-]"))
        if self.status:
            raise _Reject(json_error(self.status, "unavailable", "forced by the test"))
        return body

    async def visit(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        for key in ("landing_url", "referrer", "page"):
            if not isinstance(body.get(key), str):
                return json_error(400, "bad_request", f"{key} must be a string")
        visitor_id = body["visitor_id"] or secrets.token_urlsafe(12)
        source = self._source(body["landing_url"], body["referrer"])
        if self.sources.get(visitor_id) is None:  # first touch: the first known source
            self.sources[visitor_id] = source
        return web.json_response(self._answer(visitor_id))

    async def close(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if body["visitor_id"] is None:
            return json_error(400, "bad_request", "visitor_id is required")
        self.closed.append(body["visitor_id"])
        return web.json_response({"closed": 1})

    async def renew(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        visitor_id = body["visitor_id"]
        if visitor_id is None:
            return json_error(400, "bad_request", "visitor_id is required")
        if visitor_id not in self.visitors:
            return json_error(404, "unknown_visitor", "no lease for this visitor")
        return web.json_response(self._answer(visitor_id))

    @web.middleware
    async def cors(self, request: web.Request, handler) -> web.StreamResponse:
        if request.method == "OPTIONS":
            self.calls.append({"method": "OPTIONS", "path": request.path, "body": None})
            response: web.StreamResponse = web.Response(status=204)
            response.headers["Access-Control-Allow-Methods"] = "POST"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type"
            response.headers["Access-Control-Max-Age"] = "86400"
        else:
            try:
                response = await handler(request)
            except _Reject as reject:
                response = reject.response
        origin = request.headers.get("Origin")
        if origin in self.allowed_origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response


class _Reject(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _static(path: Path, content_type: str, api: Servers | None = None):
    """Serve a file; in test pages, ``__API__`` becomes the API's origin."""

    async def handler(request: web.Request) -> web.Response:
        text = path.read_text()
        if api is not None:
            text = text.replace("__API__", api.api)
        return web.Response(
            text=text, content_type=content_type, headers={"Cache-Control": "no-store"}
        )

    return handler


class Servers(ThreadedServers):
    def __init__(self, api: FakeApi) -> None:
        super().__init__()
        self.fake = api

    async def _start(self) -> None:
        js = "application/javascript"
        api = web.Application(middlewares=[self.fake.cors])
        api.router.add_get("/swap.js", _static(STATIC / "swap.js", js))
        api.router.add_get("/demo", _static(STATIC / "demo.html", "text/html"))
        api.router.add_post("/api/visit", self.fake.visit)
        api.router.add_post("/api/renew", self.fake.renew)
        api.router.add_post("/api/close", self.fake.close)
        site = web.Application()
        site.router.add_get("/swap.js", _static(STATIC / "swap.js", js))

        async def big(request: web.Request) -> web.Response:
            return web.Response(text=big_page(self.api), content_type="text/html")

        site.router.add_get("/big.html", big)
        for page in sorted(SITE.glob("*.html")):
            site.router.add_get(f"/{page.name}", _static(page, "text/html", self))
        self.api = await self._listen(api)
        self.site = await self._listen(site)
        self.fake.allowed_origins = {self.api, self.site}


@pytest.fixture(scope="package")
def servers() -> Iterator[Servers]:
    running = Servers(FakeApi())
    running.start()
    yield running
    running.stop()


@pytest.fixture
def fake(servers: Servers) -> FakeApi:
    servers.fake.reset()
    return servers.fake


def _missing() -> str | None:
    if sync_playwright is None:
        return "playwright is not installed (pip install playwright)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


# Package scope: one browser for all the browser tests, stopped after the last of them. While
# sync Playwright runs, the main thread has a running asyncio loop, which would break the
# asyncio tests that come after (a session-scoped browser would live on through them).
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    missing = _missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests need {missing}; CI=true, so this is a failure")
        pytest.skip(f"browser tests need {missing}")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser, fake: FakeApi) -> Iterator[BrowserContext]:
    ctx = browser.new_context()
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()
