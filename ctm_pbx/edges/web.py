"""The aiohttp application: the tracking script, its API, the demo page and health.

Errors leave as JSON ``{"error": …, "message": …}`` with a 4xx status; an
unexpected failure is logged and answered 500 in the same shape.

Limits per client (an IP address; an IPv6 client per /64; behind the proxies
of ``web.trusted_proxies``, the client X-Forwarded-For names): 10 API
requests/s with bursts of 60, and of those at most 1 new visitor/s with bursts
of 20 (a visitor id the store does not know counts as new); beyond that a 429
with Retry-After. A renewal for an unknown visitor gets a 404 (the script then
starts a visit).
Request bodies over 16 KB get a 413.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import resources
from urllib.parse import urlsplit

from aiohttp import web

from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.adapters.visits import VisitDesk, VisitRequest
from ctm_pbx.core.callflow import NumberInfo
from ctm_pbx.core.client_address import client_key, parse_networks
from ctm_pbx.core.model import Config
from ctm_pbx.core.ratelimit import RateLimiter
from ctm_pbx.edges.static_asset import StaticAsset

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
StatusProvider = Callable[[], dict]
MAX_BODY = 16 * 1024
MAX_URL = 2000
VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
ALLOWED_ORIGINS = web.AppKey("allowed_origins", tuple)


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, retry_after: int = 0) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.retry_after = retry_after


def json_error(status: int, error: str, message: str, headers=None) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status, headers=headers)


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        headers = _cors_headers(request)
        if exc.retry_after:
            headers["Retry-After"] = str(exc.retry_after)
        return json_error(exc.status, exc.error, exc.message, headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal_error", "the server failed; see its log")


def _static(name: str) -> bytes:
    return resources.files("ctm_pbx.web").joinpath("static", name).read_bytes()


@dataclass
class VisitApi:
    """What the tracking API needs: the config, the store and per-IP limits."""

    config: Config
    writer: StoreWriter
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ticks: Callable[[], float] = time.monotonic  # the rate limiters' clock
    requests: RateLimiter = field(default_factory=lambda: RateLimiter(rate=10, burst=60))
    new_visitors: RateLimiter = field(default_factory=lambda: RateLimiter(rate=1, burst=20))
    desk: VisitDesk | None = None  # built from the config and the writer when not given
    active_numbers: Callable[[], Mapping[str, NumberInfo]] | None = None  # the live inventory

    def __post_init__(self) -> None:
        if self.desk is None:
            self.desk = VisitDesk(self.config, self.writer, active_numbers=self.active_numbers)


def _cors_headers(request: web.Request) -> dict[str, str]:
    origin = request.headers.get("Origin")
    allowed = request.app.get(ALLOWED_ORIGINS, ())
    if origin and (origin in allowed or _same_origin(request, origin)):
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {}


def _same_origin(request: web.Request, origin: str) -> bool:
    return origin == f"{request.scheme}://{request.host}"


def _check_origin(request: web.Request) -> None:
    origin = request.headers.get("Origin")
    if origin and not _cors_headers(request):
        raise ApiError(403, "origin_not_allowed", f"origin {origin[:100]} may not use this API")


TRUSTED_PROXIES = web.AppKey("trusted_proxies", tuple)


CLIENT_KEYS = web.AppKey("client_keys", dict)
CLIENT_KEYS_MAX = 8192


def _client_ip(request: web.Request) -> str:
    """The client's limit key: behind a trusted proxy, from X-Forwarded-For."""
    # every X-Forwarded-For line, in order: a proxy may add its own line to a forged one
    forwarded = ", ".join(request.headers.getall("X-Forwarded-For", ())) or None
    # parsing addresses costs ~10 us a request; a site's clients repeat
    known = request.app[CLIENT_KEYS]
    seen = (request.remote, forwarded)
    key = known.get(seen)
    if key is None:
        if len(known) >= CLIENT_KEYS_MAX:
            known.clear()
        key = known[seen] = client_key(request.remote, forwarded, request.app[TRUSTED_PROXIES])
    return key


async def _read_json(request: web.Request) -> dict:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "body_too_large", f"request bodies are limited to {MAX_BODY} bytes")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise ApiError(413, "body_too_large", f"request bodies are limited to {MAX_BODY} bytes")
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):  # "[[[[…" nests past the stack
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return data


def _optional_str(data: dict, key: str, limit: int) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, "invalid_field", f"'{key}' must be a string")
    if len(value) > limit:
        raise ApiError(400, "invalid_field", f"'{key}' is longer than {limit} characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate ("\ud800") is valid JSON, not text
            raise ApiError(400, "invalid_field", f"'{key}' is not valid text") from None
    return value


def _url(data: dict, key: str) -> str | None:
    """An http(s) URL (or None when absent or empty)."""
    value = _optional_str(data, key, MAX_URL)
    if not value:
        return None
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:  # e.g. "http://[::1/x": an unclosed IPv6 host
        raise ApiError(400, "invalid_field", f"'{key}' is not a URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ApiError(400, "invalid_field", f"'{key}' must be an http(s) URL")
    return value


def _visit_request(request: web.Request, data: dict, *, page_view: bool, ip: str) -> VisitRequest:
    visitor_id = _optional_str(data, "visitor_id", 64)
    if visitor_id is not None and not VISITOR_ID.match(visitor_id):
        raise ApiError(400, "invalid_field", "'visitor_id' is not a visitor id")
    landing = None
    referrer = None
    if page_view:
        landing = _url(data, "landing_url")
        if not landing:
            raise ApiError(400, "missing_field", "'landing_url' is required")
        referrer = _optional_str(data, "referrer", MAX_URL) or None  # the core reads any
    elif visitor_id is None:
        raise ApiError(400, "missing_field", "'visitor_id' is required")
    return VisitRequest(
        visitor_id=visitor_id,
        landing_url=landing,
        referrer=referrer,
        ip=ip,
        user_agent=_header_text(request.headers.get("User-Agent")),
    )


def _header_text(value: str | None) -> str | None:
    """A header as storable text: bytes that were not UTF-8 arrive as lone surrogates."""
    if value is None or value.isascii():
        return value
    return value.encode("utf-8", "replace").decode("utf-8")


def _rate_limited(retry: float, what: str) -> ApiError:
    message = f"too many {what} from this address; retry later"
    return ApiError(429, "rate_limited", message, retry_after=max(1, round(retry)))


def create_app(status: StatusProvider, api: VisitApi | None = None) -> web.Application:
    """The web app. ``status`` reports the daemon's state for ``/healthz``."""
    app = web.Application(middlewares=[errors_as_json], client_max_size=MAX_BODY)

    async def healthz(request: web.Request) -> web.Response:
        state = status()
        code = 200 if state.get("ari_connected") else 503
        body = {"status": "ok" if code == 200 else "degraded", **state}
        return web.json_response(body, status=code)

    app.router.add_get("/healthz", healthz)
    if api is not None:
        _add_tracking(app, api)
    return app


def _add_tracking(app: web.Application, api: VisitApi) -> None:
    app[ALLOWED_ORIGINS] = tuple(api.config.web.allowed_origins)
    app[TRUSTED_PROXIES] = parse_networks(api.config.web.trusted_proxies)
    app[CLIENT_KEYS] = {}
    desk = api.desk
    assert desk is not None

    async def write_buffered_activity(app: web.Application) -> None:
        desk.flush()

    app.on_cleanup.append(write_buffered_activity)
    script = StaticAsset.of(_static("swap.js"), "application/javascript", "public, max-age=300")
    demo = _static("demo.html")

    async def demo_page(request: web.Request) -> web.Response:
        return web.Response(body=demo, content_type="text/html", charset="utf-8")

    async def preflight(request: web.Request) -> web.Response:
        _check_origin(request)
        headers = {
            **_cors_headers(request),
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "600",
        }
        return web.Response(status=204, headers=headers)

    async def visit(request: web.Request, *, page_view: bool) -> web.Response:
        _check_origin(request)
        ip = _client_ip(request)
        ok, retry = api.requests.allow(ip, api.ticks())
        if not ok:
            raise _rate_limited(retry, "requests")
        req = _visit_request(request, await _read_json(request), page_view=page_view, ip=ip)
        # A page view may create a visitor (a visitor id the store does not know is a
        # new visitor too): it takes a token first, so that concurrent requests cannot
        # all pass, and gives it back when the visitor was known after all.
        may_create, retry = api.new_visitors.allow(ip, api.ticks()) if page_view else (False, 0)
        if page_view and req.visitor_id is None and not may_create:
            raise _rate_limited(retry, "new visitors")
        created = False
        try:
            result = await desk.visit(replace(req, may_create=may_create), api.clock())
            created = result.created
        finally:
            if may_create and not created:
                api.new_visitors.refund(ip)
        if result.refused:
            raise _rate_limited(retry, "new visitors")
        if result.unknown:
            raise ApiError(404, "unknown_visitor", "no such visitor; start a visit")
        return web.json_response(result.as_json(), headers=_cors_headers(request))

    async def api_visit(request: web.Request) -> web.Response:
        return await visit(request, page_view=True)

    async def api_renew(request: web.Request) -> web.Response:
        return await visit(request, page_view=False)

    app.router.add_get("/swap.js", script.handle)
    app.router.add_get("/demo", demo_page)
    app.router.add_post("/api/visit", api_visit)
    app.router.add_post("/api/renew", api_renew)
    app.router.add_route("OPTIONS", "/api/visit", preflight)
    app.router.add_route("OPTIONS", "/api/renew", preflight)
