"""The aiohttp application: the tracking script, its API, the demo page and health.

Errors leave as JSON ``{"error": …, "message": …}`` with a 4xx status; an
unexpected failure is logged and answered 500 in the same shape.

Limits per client (an IP address; an IPv6 client per /64; behind the proxies
of ``web.trusted_proxies``, the client X-Forwarded-For names): 10 API
requests/s with bursts of 60, and of those at most 1 new visitor/s with bursts
of 20 (a visitor id the store does not know counts as new); beyond that a 429
with Retry-After. A renewal for an unknown visitor gets a 404 (the script then
starts a visit).
Request bodies over 16 KB get a 413 (a page's close beacon, over 1 KB); a body
not complete within 10 s, a 408.

``POST /api/close`` (``{"visitor_id"}``, sent by ``navigator.sendBeacon`` when the
page is hidden or left: a CORS simple request, same origins and limits as the
visit API) closes the visitor's open leases: ``{"closed": n}``.
Connection limits and timeouts: edges/web_listener.py.
"""

from __future__ import annotations

import asyncio
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
from aiohttp.http_exceptions import HttpProcessingError

from ctm_pbx import __version__
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.adapters.visits import VisitDesk, VisitRequest
from ctm_pbx.core.client_address import client_key, parse_networks
from ctm_pbx.core.model import Config, NumberInfo
from ctm_pbx.core.ratelimit import RateLimiter
from ctm_pbx.edges.static_asset import StaticAsset
from ctm_pbx.edges.web_listener import name_server

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
StatusProvider = Callable[[], dict]
MAX_BODY = 16 * 1024
MAX_CLOSE_BODY = 1024  # {"visitor_id": …}: a few dozen bytes
BODY_TIMEOUT_S = 10.0
MAX_URL = 2000
VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
ALLOWED_ORIGINS = web.AppKey("allowed_origins", tuple)


class ApiError(Exception):
    def __init__(
        self, status: int, error: str, message: str, retry_after: int = 0, close: bool = False
    ) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.retry_after = retry_after
        self.close = close  # the body could not be read: close rather than read on


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
        response = json_error(exc.status, exc.error, exc.message, headers)
        if exc.close:
            response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = exc.reason.lower().replace(" ", "_")
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return json_error(exc.status, error, exc.text or exc.reason, allow)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal_error", "the server failed; see its log")


def _static(name: str) -> bytes:
    return resources.files("ctm_pbx.edges").joinpath("static", name).read_bytes()


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
    body_timeout_s: float = BODY_TIMEOUT_S  # for the whole body, from its headers

    def __post_init__(self) -> None:
        if self.desk is None:
            self.desk = VisitDesk(self.config, self.writer, active_numbers=self.active_numbers)


def _cors_headers(request: web.Request) -> dict[str, str]:
    origin = request.headers.get("Origin")
    if origin and origin in request.app.get(ALLOWED_ORIGINS, ()):
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {}


def own_origins(host: str, port: int) -> tuple[str, ...]:
    """The listener's own origins, from the config (never from the client's ``Host``):
    its demo page calls the API from there. A wildcard address has none."""
    names = {"127.0.0.1": ("127.0.0.1", "localhost"), "::1": ("[::1]", "localhost")}
    if host in ("", "0.0.0.0", "::"):
        return ()
    hosts = names.get(host, (f"[{host}]" if ":" in host else host,))
    suffix = "" if port == 80 else f":{port}"  # a browser omits the default port
    return tuple(f"http://{h}{suffix}" for h in hosts)


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


async def _read_json(request: web.Request, timeout_s: float, limit: int = MAX_BODY) -> dict:
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    raw = await _read_body(request, timeout_s, limit)
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):  # "[[[[…" nests past the stack
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return data


async def _read_body(request: web.Request, timeout_s: float, limit: int = MAX_BODY) -> bytes:
    """The whole body (it may arrive in several segments), bounded in size and time."""
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            while chunk := await request.content.read(limit + 1 - size):
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
    except TimeoutError:
        raise ApiError(408, "body_timeout", "the body did not arrive in time", close=True) from None
    except (HttpProcessingError, web.RequestPayloadError):  # e.g. gzip that is not
        message = "the body does not match its Content-Encoding"
        raise ApiError(400, "invalid_body", message, close=True) from None
    except ConnectionError:  # the client left mid-body: nobody to answer, nothing to log
        raise ApiError(400, "incomplete_body", "the connection closed", close=True) from None
    return b"".join(chunks)


def _too_large(limit: int = MAX_BODY) -> ApiError:
    message = f"request bodies are limited to {limit} bytes"
    return ApiError(413, "body_too_large", message, close=True)


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


# What a page may report with its visit: an IANA zone name ("America/Argentina/Buenos_Aires",
# "Etc/GMT+5", "UTC"), a BCP 47 language tag, Google Analytics' ids (issue 20).
TIME_ZONE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]{0,29}(/[A-Za-z0-9_+\-]{1,30}){0,2}$")
LANGUAGE = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8}){0,5}$")
GA_CLIENT_ID = re.compile(r"^\d{1,20}\.\d{1,20}$")  # the _ga cookie's last two parts
GA_SESSION_ID = re.compile(r"^\d{1,20}$")
SIGNALS = (
    ("time_zone", 64, TIME_ZONE, "an IANA time zone"),
    ("language", 35, LANGUAGE, "a language tag"),
    ("ga_client_id", 41, GA_CLIENT_ID, "a Google Analytics client id"),
    ("ga_session_id", 20, GA_SESSION_ID, "a Google Analytics session id"),
)


def _signals(data: dict) -> dict[str, str | None]:
    """The page's time zone, language and GA ids: each optional, bounded and of its shape."""
    found: dict[str, str | None] = {}
    for key, limit, shape, what in SIGNALS:
        value = _optional_str(data, key, limit) or None
        if value is not None and not shape.match(value):
            raise ApiError(400, "invalid_field", f"'{key}' is not {what}")
        found[key] = value
    return found


def _visit_request(request: web.Request, data: dict, *, page_view: bool, ip: str) -> VisitRequest:
    visitor_id = _optional_str(data, "visitor_id", 64)
    if visitor_id is not None and not VISITOR_ID.match(visitor_id):
        raise ApiError(400, "invalid_field", "'visitor_id' is not a visitor id")
    landing = None
    referrer = None
    signals: dict[str, str | None] = {}
    if page_view:
        signals = _signals(data)
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
        time_zone=signals.get("time_zone"),
        language=signals.get("language"),
        ga_client_id=signals.get("ga_client_id"),
        ga_session_id=signals.get("ga_session_id"),
    )


def _header_text(value: str | None) -> str | None:
    """A header as storable text: bytes that were not UTF-8 arrive as lone surrogates."""
    if value is None or value.isascii():
        return value
    return value.encode("utf-8", "replace").decode("utf-8")


def _rate_limited(retry: float, what: str) -> ApiError:
    message = f"too many {what} from this address; retry later"
    return ApiError(429, "rate_limited", message, retry_after=max(1, round(retry)))


CALLS_NEED = ("ari", "ami", "fastagi")  # the call path's readiness (the ones the mode uses)


def health_report(state: dict) -> dict:
    """``/healthz``'s body: the daemon's state, with each component's ``ok`` and the
    readiness of the website API and of the call path. The API needs only the
    database writer to run (``running``; when it cannot write, ``ok`` is false and
    the status degraded, but the API still answers); never Asterisk."""
    components: dict = state.get("components", {})
    db = components.get("database", {})
    web_api = bool(db.get("running", db.get("ok", True)))
    calls = all(components[name].get("ok", False) for name in CALLS_NEED if name in components)
    everything_ok = all(c.get("ok", False) for c in components.values())
    return {
        "status": "ok" if everything_ok else "degraded",
        "version": __version__,
        "ready": {"web_api": web_api, "calls": calls},
        **state,
    }


def create_app(
    status: StatusProvider, api: VisitApi | None = None, *, middlewares: tuple = ()
) -> web.Application:
    """The web app. ``status`` reports the daemon's state (``components``: each with
    ``ok``) for ``/healthz``: 200 while the website API is ready, whatever Asterisk
    does; ``/healthz/calls``: 200 while the call path is; ``/healthz/live``: 200.
    ``middlewares`` run outside the JSON errors (the metrics see the final status)."""
    app = web.Application(middlewares=[*middlewares, errors_as_json], client_max_size=MAX_BODY)
    app.on_response_prepare.append(name_server)

    def answer(report: dict, ready: bool) -> web.Response:
        return web.json_response(report, status=200 if ready else 503)

    async def healthz(request: web.Request) -> web.Response:
        report = health_report(status())
        return answer(report, report["ready"]["web_api"])

    async def healthz_calls(request: web.Request) -> web.Response:
        report = health_report(status())
        return answer(report, report["ready"]["calls"])

    async def healthz_live(request: web.Request) -> web.Response:
        return web.json_response({"status": "alive", "version": __version__})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/healthz/calls", healthz_calls)
    app.router.add_get("/healthz/live", healthz_live)
    if api is not None:
        _add_tracking(app, api)
    return app


def _add_tracking(app: web.Application, api: VisitApi) -> None:
    web_cfg = api.config.web
    app[ALLOWED_ORIGINS] = (*web_cfg.allowed_origins, *own_origins(web_cfg.host, web_cfg.port))
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
        req = _visit_request(
            request, await _read_json(request, api.body_timeout_s), page_view=page_view, ip=ip
        )
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

    async def api_close(request: web.Request) -> web.Response:
        _check_origin(request)
        ok, retry = api.requests.allow(_client_ip(request), api.ticks())
        if not ok:
            raise _rate_limited(retry, "requests")
        data = await _read_json(request, api.body_timeout_s, MAX_CLOSE_BODY)
        visitor_id = _optional_str(data, "visitor_id", 64)
        if visitor_id is None:
            raise ApiError(400, "missing_field", "'visitor_id' is required")
        if not VISITOR_ID.match(visitor_id):
            raise ApiError(400, "invalid_field", "'visitor_id' is not a visitor id")
        closed = await desk.close(visitor_id, api.clock())
        if closed is None:
            raise ApiError(503, "store_unavailable", "the close could not be stored; retry later")
        return web.json_response({"closed": closed}, headers=_cors_headers(request))

    async def api_renew(request: web.Request) -> web.Response:
        return await visit(request, page_view=False)

    app.router.add_get("/swap.js", script.handle)
    app.router.add_get("/demo", demo_page)
    app.router.add_post("/api/visit", api_visit)
    app.router.add_post("/api/renew", api_renew)
    app.router.add_post("/api/close", api_close)
    app.router.add_route("OPTIONS", "/api/visit", preflight)
    app.router.add_route("OPTIONS", "/api/renew", preflight)
    app.router.add_route("OPTIONS", "/api/close", preflight)
