"""The dashboard: the call log, reports and charts for people, behind a login.

Its own aiohttp app on its own listener (``dashboard.port``, default 8081), never the
public visitor API's. Server-rendered HTML (Jinja2, autoescaped), charts as SVG from
``core.charts``, one small stylesheet; the only script is the call log's live feed.

Security, for every route but the login page and the stylesheet (a test walks the
router): a session cookie (random token, ``HttpOnly``, ``SameSite=Strict``, ``Secure``
when the request came over TLS) that the server can end; a CSRF token on every
request that changes something; logins limited per account and per client. Reads run
on ``StoreReader`` threads, writes through the one ``StoreWriter``: nothing here
blocks the event loop the calls share.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hmac
import io
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from ctm_pbx.adapters.media import local_file
from ctm_pbx.adapters.pool_accuracy import advise_confident, pool_accuracy
from ctm_pbx.adapters.store import call_search, outbox
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store import numbers as number_store
from ctm_pbx.adapters.store import users as user_store
from ctm_pbx.adapters.store.reader import StoreReader
from ctm_pbx.adapters.store.reports import period_totals, run_report
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.adapters.wall_clock import utcnow
from ctm_pbx.core import charts
from ctm_pbx.core.call import path as call_path
from ctm_pbx.core.call.actions import Outcome
from ctm_pbx.core.client_address import client_key, from_trusted_proxy, parse_networks
from ctm_pbx.core.model import Config, Pool
from ctm_pbx.core.phone import InvalidNumber, to_e164
from ctm_pbx.core.pool_sizing import SizeAdvice
from ctm_pbx.core.ratelimit import RateLimiter
from ctm_pbx.core.reports import (
    CONFIDENT,
    WEEKDAYS,
    Dimension,
    Filters,
    QualifiedCall,
    ReportError,
    Totals,
    change,
    heat_map,
    metrics,
    parse_period,
    time_buckets,
)
from ctm_pbx.core.tags import TagError, check_comment, parse_tags
from ctm_pbx.core.users import Session
from ctm_pbx.edges.dashboard.ads_feed import ads_feed
from ctm_pbx.edges.dashboard.live import LiveCalls
from ctm_pbx.edges.web_listener import name_server

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
COOKIE = "ctm_session"
LOGIN_COOKIE = "ctm_login_csrf"
PAGE_SIZE = 50
EXPORT_MAX = 100_000
TOUCH_EVERY = timedelta(minutes=1)
ADVICE_KEPT = timedelta(hours=1)  # a pool's advised size, before it is worked out again
HEARTBEAT_S = 15.0
LOGIN_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32}$")
# "ads_feed": the Ads feed has its own basic auth; "metrics": Prometheus' scrape checks
# its own access (edges/metrics.py), not a session
PUBLIC = {"login", "static", "favicon", "ads_feed", "metrics"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DASHBOARD: web.AppKey[Dashboard] = web.AppKey("dashboard")
SESSION = web.RequestKey("session", Session)


class Dashboard:
    """State the handlers share: config, reader, writer, templates, login limits."""

    def __init__(
        self,
        config: Config,
        reader: StoreReader,
        writer: StoreWriter,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.clock = clock
        self.reconfigure(config)
        # 5 attempts a minute per account, 20 per client address
        self.account_limit = RateLimiter(rate=5 / 60, burst=5, max_clients=10_000)
        self.client_limit = RateLimiter(rate=20 / 60, burst=20, max_clients=10_000)
        self.live = LiveCalls(reader)
        # the Pools page's advised sizes: replays of a week of visits, too slow for a
        # page, worked out in the background and kept an hour (pool -> (when, advice))
        self.advice: dict[str, tuple[datetime, SizeAdvice]] = {}
        self._advising: asyncio.Task | None = None
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters.update(
            local=self.local_time, secs=_secs, pct=_pct, signed=_signed, phone=_phone
        )
        self.templates.globals.update(
            when=call_path.when, describe=call_path.describe, change=change
        )

    def advice_for(self, pool: Pool) -> SizeAdvice | None:
        """The pool's advised size if worked out within ``ADVICE_KEPT``, else None."""
        kept = self.advice.get(pool.name)
        if kept is None or self.clock() - kept[0] > ADVICE_KEPT:
            return None
        return kept[1]

    def advise_stale(self) -> None:
        """Work out, in the background, the advice of each pool that has none fresh (one
        run at a time, each pool's replay on a reader thread)."""
        if self._advising is not None and not self._advising.done():
            return
        stale = [p for p in self.config.pools.values() if self.advice_for(p) is None]
        if stale:
            self._advising = asyncio.get_running_loop().create_task(self._advise(stale))

    async def _advise(self, pools: list[Pool]) -> None:
        for pool in pools:
            now = self.clock()
            try:
                got = await self.reader.run(advise_confident, self.config, pool, CONFIDENT, now)
            except Exception:  # the page says it could not: never the dashboard's end
                log.exception("pool %s: the advised size could not be worked out", pool.name)
                continue
            self.advice[pool.name] = (now, got)

    async def close(self) -> None:
        """Stop what runs in the background (the daemon's stop)."""
        if self._advising is not None:
            self._advising.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._advising
        await self.live.close()

    def reconfigure(self, config: Config) -> None:
        """Use ``config`` (its pools, sources and report settings) from the next page on."""
        name = config.reports.time_zone
        self.tz = ZoneInfo(name or "UTC")
        self.zone_label = name or "UTC (set reports.time_zone)"
        self.qualified = QualifiedCall(min_talk_seconds=config.reports.qualified_min_talk_seconds)
        self.proxies = parse_networks(config.web.trusted_proxies)
        self.config = config

    def local_time(self, text: str | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        if not text:
            return "-"
        return datetime.fromisoformat(text).astimezone(self.tz).strftime(fmt)

    def render(self, request: web.Request, name: str, status: int = 200, **values) -> web.Response:
        session: Session | None = request.get(SESSION)
        body = self.templates.get_template(name).render(
            session=session, csrf=session.csrf if session else "", zone=self.zone_label,
            path=request.path, **values,
        )  # fmt: skip
        return web.Response(text=body, status=status, content_type="text/html")


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes}:{seconds:02d}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f} %"


def _signed(value: float | None) -> str:
    return "" if value is None else f"{value * 100:+.0f} %"


def _phone(value: str | None) -> str:
    if not value:
        return "-"
    if value.startswith("+1") and len(value) == 12:
        return f"({value[2:5]}) {value[5:8]}-{value[8:]}"
    return value


# -- middleware ------------------------------------------------------------------------


def _secure(request: web.Request, dash: Dashboard) -> bool:
    """Came over TLS: directly, or to a trusted proxy that says so."""
    if request.secure:
        return True
    proxied = from_trusted_proxy(request.remote or "", dash.proxies)
    return proxied and request.headers.get("X-Forwarded-Proto", "").lower() == "https"


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "media-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")
    if isinstance(response, web.HTTPException):
        raise response
    return response


@web.middleware
async def require_login(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every route but the public ones needs a live session, and a CSRF token for
    anything but GET/HEAD."""
    dash: Dashboard = request.app[DASHBOARD]
    resource = request.match_info.route.resource
    if resource is not None and resource.name in PUBLIC:
        return await handler(request)
    token = request.cookies.get(COOKIE, "")
    session = await dash.reader.run(user_store.get_session, token) if token else None
    now = dash.clock()
    if session is None or session.expired(now):
        if request.method in ("GET", "HEAD"):
            target = "/login?" + urlencode({"next": request.path_qs})
            raise web.HTTPSeeOther(target)
        raise web.HTTPUnauthorized(text="log in first")
    if request.method not in ("GET", "HEAD"):
        form = await request.post() if request.content_type.endswith("form-urlencoded") else {}
        sent = request.headers.get("X-CSRF-Token") or str(form.get("csrf", ""))
        if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise web.HTTPForbidden(text="missing or wrong CSRF token: reload the page")
    if now - session.last_seen_at > TOUCH_EVERY:
        await dash.writer.run(user_store.touch_session, token, now)
    request[SESSION] = session
    return await handler(request)


# -- login -----------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no ``//host`` or scheme): no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def login_page(request: web.Request) -> web.StreamResponse:
    dash: Dashboard = request.app[DASHBOARD]
    if request.method == "GET":
        # keep the token of an earlier login page (another tab, a favicon's redirect)
        csrf = request.cookies.get(LOGIN_COOKIE, "")
        if not LOGIN_TOKEN.match(csrf):
            csrf = secrets.token_urlsafe(24)
        response = dash.render(
            request, "login.html", login_csrf=csrf, error="",
            next=_safe_next(request.query.get("next")),
        )  # fmt: skip
        response.set_cookie(
            LOGIN_COOKIE, csrf, httponly=True, samesite="Strict", secure=_secure(request, dash),
            max_age=3600, path="/login",
        )  # fmt: skip
        return response
    form = await request.post()
    name = str(form.get("username", "")).strip().lower()[:64]
    password = str(form.get("password", ""))[:1024]
    target = _safe_next(str(form.get("next", "")))
    sent, expected = str(form.get("csrf", "")), request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise web.HTTPForbidden(text="missing or wrong CSRF token: reload the login page")
    now = time.monotonic()
    client = client_key(request.remote or "", request.headers.get("X-Forwarded-For"), dash.proxies)
    ok_client, wait_c = dash.client_limit.allow(client, now)
    ok_account, wait_a = dash.account_limit.allow(name, now) if ok_client else (False, 0.0)
    if not (ok_client and ok_account):
        wait = max(wait_c, wait_a)
        log.warning("dashboard login throttled for %r from %s", name, client)
        response = dash.render(
            request, "login.html", status=429, login_csrf=expected, next=target,
            error=f"Too many attempts. Try again in {int(wait) + 1} seconds.",
        )  # fmt: skip
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    role = await dash.writer.run(user_store.verify_login, name, password)
    if role is None:
        log.info("dashboard login failed for %r from %s", name, client)
        return dash.render(
            request, "login.html", status=401, login_csrf=expected, next=target,
            error="Wrong username or password.",
        )  # fmt: skip
    token, _csrf = await dash.writer.run(user_store.create_session, name, dash.clock())
    log.info("dashboard login: %s (%s) from %s", name, role.value, client)
    response = web.HTTPSeeOther(target)
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="Strict", secure=_secure(request, dash), path="/"
    )
    response.del_cookie(LOGIN_COOKIE, path="/login")
    raise response


async def favicon(request: web.Request) -> web.StreamResponse:
    return web.Response(status=204, headers={"Cache-Control": "max-age=86400"})


async def logout(request: web.Request) -> web.StreamResponse:
    dash: Dashboard = request.app[DASHBOARD]
    await dash.writer.run(user_store.end_session, request.cookies.get(COOKIE, ""))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


# -- pages -----------------------------------------------------------------------------


def _kpis(db, dash: Dashboard, now: datetime) -> list[dict]:
    out = []
    for since, label in (("today", "Today"), ("7d", "Last 7 days"), ("30d", "Last 30 days")):
        period = parse_period(since, None, now=now, tz=dash.tz)
        cur = metrics(
            period_totals(db, period.start, period.end, Filters(), dash.qualified, unique=False)
        )
        before = period.previous()
        prev = metrics(
            period_totals(db, before.start, before.end, Filters(), dash.qualified, unique=False)
        )
        out.append(
            {
                "label": label,
                "values": [
                    (name, cur[m], kind, change(cur[m], prev[m]))
                    for name, m, kind in (
                        ("Calls", "calls", "n"),
                        ("Answer rate", "answer_rate", "%"),
                        ("First-time callers", "first_time", "n"),
                        ("Qualified calls", "qualified", "n"),
                    )
                ],
            }
        )
    return out


def _overview_data(db, dash: Dashboard, now: datetime) -> dict:
    period = parse_period("30d", None, now=now, tz=dash.tz)
    by_source = run_report(db, Dimension.SOURCE, period, dash.tz, Filters(), dash.qualified,
                           compare=False, unique=False)  # fmt: skip
    sources = [r.key or "(none)" for r in by_source.rows]
    top_sources = sources[:7]
    days = run_report(db, Dimension.DAY, period, dash.tz, Filters(), dash.qualified,
                      compare=False, unique=False)  # fmt: skip
    day_labels = [b.label for b in time_buckets(period, Dimension.DAY, dash.tz)]
    series: dict[str, list[int]] = {}
    for name in top_sources:
        source = None if name == "(none)" else name
        rep = run_report(db, Dimension.DAY, period, dash.tz, Filters(source=source),
                         dash.qualified, compare=False, unique=False)  # fmt: skip
        counts = {r.key: r.metrics["calls"] for r in rep.rows}
        series[name] = [int(counts.get(d) or 0) for d in day_labels]
    if len(sources) > len(top_sources):
        totals = {r.key: r.metrics["calls"] for r in days.rows}
        series["other"] = [
            int(totals.get(d) or 0) - sum(s[i] for s in series.values())
            for i, d in enumerate(day_labels)
        ]
    hours = run_report(db, Dimension.HOUR, period, dash.tz, Filters(), dash.qualified,
                       compare=False, unique=False)  # fmt: skip
    grid = heat_map(
        {r.key: Totals(calls=int(r.metrics["calls"] or 0)) for r in hours.rows if r.key}
    )
    campaigns = run_report(db, Dimension.CAMPAIGN, period, dash.tz, Filters(), dash.qualified,
                           unique=False)  # fmt: skip
    keywords = run_report(db, Dimension.KEYWORD, period, dash.tz, Filters(), dash.qualified,
                          unique=False)  # fmt: skip
    live = call_search.search_calls(db, Filters(), limit=20, start=now - timedelta(hours=6))
    return {
        "kpis": _kpis(db, dash, now),
        "timeline_svg": charts.stacked_bars(
            [d[5:] for d in day_labels],
            series,
            title="Calls per day by source, last 30 days",
        ),  # fmt: skip
        "sources_svg": charts.horizontal_bars(
            [(r.key or "(none)", int(r.metrics["calls"] or 0)) for r in by_source.rows[:12]],
            title="Calls by source, last 30 days",
        ),
        "heat_svg": charts.heat_map_svg(grid, WEEKDAYS, title="Calls by weekday and hour"),
        "campaigns": [r for r in campaigns.rows if r.key][:10],
        "keywords": [r for r in keywords.rows if r.key][:10],
        "in_progress": [c for c in live if c["status"] == "in_progress"],
    }


async def overview(request: web.Request) -> web.StreamResponse:
    dash: Dashboard = request.app[DASHBOARD]
    data = await dash.reader.run(_overview_data, dash, dash.clock())
    return dash.render(request, "overview.html", **data)


def _filters(request: web.Request, dash: Dashboard) -> tuple[Filters, Any, dict[str, str]]:
    q = request.query
    given = {k: q.get(k, "").strip()[:100] for k in (
        "source", "pool", "number", "route", "outcome", "first", "caller", "tag", "since",
        "until")}  # fmt: skip
    outcome = given["outcome"] or None
    if outcome and outcome not in {o.value for o in Outcome}:
        raise web.HTTPBadRequest(text=f"unknown outcome '{outcome}'")
    number = given["number"] or None
    if number:
        try:
            number = to_e164(number, dash.config.tracking.default_country)
        except InvalidNumber:
            raise web.HTTPBadRequest(text=f"'{number}' is not a phone number") from None
    first = {"first": True, "repeat": False}.get(given["first"])
    caller = "".join(ch for ch in given["caller"] if ch.isdigit() or ch == "+") or None
    filters = Filters(
        source=given["source"] or None, pool=given["pool"] or None, number=number,
        route=given["route"] or None, outcome=outcome, first_time=first, caller=caller,
        tag=given["tag"] or None,
    )  # fmt: skip
    period = None
    if given["since"] or given["until"]:
        try:
            period = parse_period(given["since"] or "30d", given["until"] or None,
                                  now=dash.clock(), tz=dash.tz)  # fmt: skip
        except ReportError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
    return filters, period, given


async def call_log(request: web.Request) -> web.StreamResponse:
    dash: Dashboard = request.app[DASHBOARD]
    filters, period, given = _filters(request, dash)
    try:
        page = max(1, min(10_000, int(request.query.get("page", "1"))))
    except ValueError:
        raise web.HTTPBadRequest(text="page must be a number") from None
    start, end = (period.start, period.end) if period else (None, None)

    def load(db):
        rows = call_search.search_calls(db, filters, start=start, end=end, limit=PAGE_SIZE,
                                        offset=(page - 1) * PAGE_SIZE)  # fmt: skip
        return rows, call_search.count_calls(db, filters, start=start, end=end)

    rows, total = await dash.reader.run(load)
    query = {k: v for k, v in given.items() if v}
    pages = max(1, -(-total // PAGE_SIZE))
    return dash.render(
        request, "calls.html", calls=rows, total=total, page=page, pages=pages, given=given,
        outcomes=[o.value for o in Outcome], sources=sorted(dash.config.sources),
        live=page == 1 and not query,
        routes=sorted(dash.config.routes), query=urlencode(query),
        prev_link="?" + urlencode({**query, "page": page - 1}) if page > 1 else "",
        next_link="?" + urlencode({**query, "page": page + 1}) if page < pages else "",
    )  # fmt: skip


async def call_log_csv(request: web.Request) -> web.StreamResponse:
    dash: Dashboard = request.app[DASHBOARD]
    filters, period, _ = _filters(request, dash)
    start, end = (period.start, period.end) if period else (None, None)
    rows = await dash.reader.run(
        lambda db: call_search.search_calls(db, filters, start=start, end=end, limit=EXPORT_MAX)
    )
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(call_search.LIST_COLUMNS))
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "tags": " ".join(row["tags"])})
    return web.Response(
        text=out.getvalue(), content_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="calls.csv"'},
    )  # fmt: skip


def _call_id(request: web.Request) -> int:
    try:
        return int(request.match_info["call_id"])
    except ValueError:
        raise web.HTTPNotFound(text="no such call") from None


async def call_detail(request: web.Request) -> web.StreamResponse:
    dash: Dashboard = request.app[DASHBOARD]
    call_id = _call_id(request)

    def load(db):
        call = call_store.get_call(db, call_id)
        if call is None:
            return None, []
        earlier = (
            call_search.caller_calls(db, call["caller_number"], exclude=call_id)
            if call.get("caller_number") else []
        )  # fmt: skip
        return call, earlier

    call, earlier = await dash.reader.run(load)
    if call is None:
        raise web.HTTPNotFound(text=f"no call {call_id}")
    call["tags"] = call_search.split_tags(call.get("tags"))
    return dash.render(
        request, "call.html", call=call, earlier=earlier, error=request.query.get("error", ""),
        saved=request.query.get("saved") == "1",
    )  # fmt: skip


async def annotate(request: web.Request) -> web.StreamResponse:
    dash: Dashboard = request.app[DASHBOARD]
    session: Session = request[SESSION]
    call_id = _call_id(request)
    if not session.can_edit:
        raise web.HTTPForbidden(text="only admins edit tags and comments")
    form = await request.post()
    try:
        tags = parse_tags(str(form.get("tags", ""))[:1000])
        comment = check_comment(str(form.get("comment", ""))[:5000])
    except TagError as exc:
        raise web.HTTPSeeOther(f"/calls/{call_id}?" + urlencode({"error": str(exc)})) from None
    found = await dash.writer.run(call_search.annotate_call, call_id, tags, comment)
    if not found:
        raise web.HTTPNotFound(text=f"no call {call_id}")
    log.info("call %d annotated by %s: tags %s", call_id, session.user, tags)
    raise web.HTTPSeeOther(f"/calls/{call_id}?saved=1")


def _sources_data(db, dash: Dashboard, now: datetime) -> dict:
    period = parse_period("30d", None, now=now, tz=dash.tz)
    by_source = {
        r.key: r
        for r in run_report(
            db, Dimension.SOURCE, period, dash.tz, Filters(), dash.qualified, unique=False
        ).rows
    }
    by_number = {
        r.key: r
        for r in run_report(db, Dimension.NUMBER, period, dash.tz, Filters(), dash.qualified,
                            compare=False, unique=False).rows
    }  # fmt: skip
    numbers = number_store.list_numbers(db)
    sources = []
    for name, source in sorted(dash.config.sources.items(), key=lambda kv: kv[1].priority):
        pools = [
            (pool, sum(1 for n in numbers if n.pool == pool))
            for pool, p in sorted(dash.config.pools.items())
            if p.source == name
        ]
        fixed = [n.number for n in numbers if n.source == name and not n.pool]
        sources.append({"name": name, "source": source, "pools": pools, "fixed": fixed,
                        "row": by_source.get(name)})  # fmt: skip
    return {
        "sources": sources,
        "numbers": [(n, by_number.get(n.number)) for n in numbers],
        "period": period,
    }


async def sources_page(request: web.Request) -> web.StreamResponse:
    dash: Dashboard = request.app[DASHBOARD]
    data = await dash.reader.run(_sources_data, dash, dash.clock())
    return dash.render(request, "sources.html", **data)


def _pools_data(db, dash: Dashboard, now: datetime) -> dict:
    period = parse_period("30d", None, now=now, tz=dash.tz)
    pools = pool_accuracy(
        db, dash.config, period, dash.tz, dash.qualified, CONFIDENT, now, advise=dash.advice_for
    )
    days = [label[5:] for label, _ in pools[0].daily_peaks] if pools else []
    chart = charts.grouped_lines(
        days,
        {p.pool: [peak for _, peak in p.daily_peaks] for p in pools},
        {p.pool: p.size for p in pools},
        title="Most pages open at once, per day (dashed: the pool's size)",
    )
    return {"pools": pools, "chart": chart if pools else ""}


async def pools_page(request: web.Request) -> web.StreamResponse:
    dash: Dashboard = request.app[DASHBOARD]
    data = await dash.reader.run(_pools_data, dash, dash.clock())
    dash.advise_stale()
    return dash.render(request, "pools.html", **data)


def live_row(dash: Dashboard, c: dict) -> dict:
    """A call as the log's table shows it (the page's script only places the text)."""
    return {
        "id": c["id"],
        "status": c["status"],
        "cells": [
            dash.local_time(c["started_at"], "%Y-%m-%d %H:%M"),
            _phone(c["caller_number"]),
            _phone(c["tracking_number"]),
            c["source"] or "-",
            c["utm_campaign"] or "-",
            (c["outcome"] or c["status"]).replace("_", " "),
            _secs(c["talk_seconds"]),
            c["answered_by"] or "-",
            _pct(c["attribution_confidence"]),
            ", ".join(c["tags"]),
        ],
    }


async def live_feed(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``call`` with a row each time a call starts or ends."""
    dash: Dashboard = request.app[DASHBOARD]
    queue = dash.live.subscribe()
    if queue is None:
        raise web.HTTPServiceUnavailable(
            text="too many live pages open", headers={"Retry-After": "30"}
        )
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    try:
        await response.prepare(request)
        await response.write(b": live\n\n")
        while True:
            try:
                row = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if row is None:  # the dashboard is stopping
                break
            data = json.dumps(live_row(dash, row), separators=(",", ":"))
            await response.write(f"event: call\ndata: {data}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        dash.live.unsubscribe(queue)
    return response


async def media(request: web.Request) -> web.StreamResponse:
    """A call's recording or voicemail, with HTTP Range (the audio element seeks)."""
    dash: Dashboard = request.app[DASHBOARD]
    call_id = _call_id(request)
    kind = request.match_info["kind"]
    call = await dash.reader.run(call_store.get_call, call_id)
    stored = (call or {}).get(f"{kind}_path")
    if not stored:
        raise web.HTTPNotFound(text=f"call {call_id} has no {kind}")
    path = local_file(stored, dash.config.asterisk.recordings.readable_dir)
    if path is None:
        raise web.HTTPNotFound(text="not a ctm-pbx media file")
    if not path.is_file():
        raise web.HTTPNotFound(text=f"the {kind} file is gone")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav", "Cache-Control": "private"})


def create_dashboard_app(dash: Dashboard) -> web.Application:
    app = web.Application(middlewares=[security_headers, require_login], client_max_size=64 * 1024)
    app[DASHBOARD] = dash
    app.on_response_prepare.append(name_server)

    async def stop_live(_app: web.Application) -> None:
        await dash.close()

    app.on_shutdown.append(stop_live)
    r = app.router
    login = r.add_resource("/login", name="login")
    login.add_route("GET", login_page)
    login.add_route("POST", login_page)
    r.add_static("/static", HERE / "static", name="static")
    r.add_get("/favicon.ico", favicon, name="favicon")
    r.add_post("/logout", logout, name="logout")
    r.add_get("/", overview, name="overview")
    r.add_get("/calls", call_log, name="calls")
    r.add_get("/sources", sources_page, name="sources")
    r.add_get("/pools", pools_page, name="pools")
    r.add_get("/calls.csv", call_log_csv, name="calls_csv")
    r.add_get("/calls/live", live_feed, name="live")
    r.add_get(r"/calls/{call_id:\d+}", call_detail, name="call")
    r.add_post(r"/calls/{call_id:\d+}/annotate", annotate, name="annotate")
    r.add_get(r"/calls/{call_id:\d+}/{kind:recording|voicemail}", media, name="media")
    r.add_get("/outbox", outbox_page, name="outbox")
    if dash.config.google_ads is not None and dash.config.google_ads.feed_token:
        r.add_get("/ads/{token}.csv", google_ads_feed, name="ads_feed")
    return app


async def outbox_page(request: web.Request) -> web.StreamResponse:
    """Webhooks and GA4: per destination what waits, failed, was given up (issue 20)."""
    dash: Dashboard = request.app[DASHBOARD]
    rows = await dash.reader.run(outbox.destination_rows, outbox.configured(dash.config))
    dead = {}
    for row in rows:
        if row["dead"] or row["failed"]:
            dead[row["destination"]] = await dash.reader.run(
                lambda db, name=row["destination"]: [
                    d
                    for state in ("failed", "dead")
                    for d in outbox.events(db, name, state, limit=5)
                ]
            )
    return dash.render(request, "outbox.html", rows=rows, problems=dead)


async def google_ads_feed(request: web.Request) -> web.StreamResponse:
    """Google Ads' scheduled upload fetches its click conversions here (see ads_feed)."""
    return await ads_feed(request, request.app[DASHBOARD])
