"""Prometheus metrics at ``/metrics`` on the dashboard's listener.

Each daemon has its own ``CollectorRegistry`` (never the library's global one), so
that several daemons in one process (the tests) keep apart. Two kinds of metric:

- Events, counted as they happen by hooks the adapters call: calls finished (by
  mode, outcome, source), ARI REST request and FastAGI answer latencies, visit API
  requests (by path and status) and their latency, store commit latency, config
  reloads. A hook costs a dictionary lookup and a lock or two (about a microsecond);
  no hook does I/O.
- State, read at scrape time from what the daemon already reports (``status()``,
  ``components()``: connections, calls in progress, the writer's backlog) and, on a
  reading thread, the pools' numbers and counters and the outbox's events still to
  send (per destination) from the store: nothing kept twice.

Access (``dashboard.metrics``): a bearer token, or a username and password (basic
auth), or, with neither, loopback clients only (the TCP peer: behind a reverse proxy
on the same host, give a token).
"""

from __future__ import annotations

import binascii
import hmac
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import aiohttp
import sqlite_utils
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from ctm_pbx.adapters.finished_calls import FinishedCall
from ctm_pbx.adapters.store import leases as lease_store
from ctm_pbx.adapters.store import outbox, pool_stats
from ctm_pbx.adapters.store.pool_stats import PoolCounters
from ctm_pbx.adapters.store.reader import StoreReader
from ctm_pbx.core.model import Config, MetricsSettings
from ctm_pbx.core.pools import PoolStats, pool_metrics

if TYPE_CHECKING:
    from ctm_pbx.edges.daemon import Daemon

log = logging.getLogger(__name__)

# seconds: a REST request on the event socket takes ~1 ms, over HTTP a few
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
NO_PATH = "other"  # requests that matched no route: one label, whatever the URL


@dataclass(frozen=True)
class PoolRow:
    stats: PoolStats
    counters: PoolCounters


def pool_rows(db: sqlite_utils.Database, config: Config, now: datetime) -> list[PoolRow]:
    """Each configured pool's numbers now and its counters (a reading thread's job)."""
    out = []
    for pool in config.pools.values():
        numbers = lease_store.pool_numbers(db, pool.name)
        view = lease_store.pool_view(db, pool, numbers, now)
        counters = pool_stats.pool_counters(db, pool.name)
        stats = pool_metrics(view, now, counters.shares, counters.peak_concurrent)
        out.append(PoolRow(stats, counters))
    return out


@dataclass(frozen=True)
class StoreState:
    """What a scrape reads from the store: the pools, the outbox's backlog."""

    pools: list[PoolRow]
    outbox: dict[tuple[str, str], int]  # (destination, state): events still to send


def store_state(db: sqlite_utils.Database, config: Config, now: datetime) -> StoreState:
    """One reading thread's job per scrape."""
    return StoreState(pool_rows(db, config, now), outbox.backlog(db, outbox.configured(config)))


class DaemonMetrics:
    """The daemon's registry, its event metrics and the hooks that feed them."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.calls = Counter(
            "ctm_calls",
            "Calls finished, by mode (ari, agi), outcome and source",
            ["mode", "outcome", "source"],
            registry=r,
        )
        self.ari_rest = Histogram(
            "ctm_ari_rest_seconds",
            "ARI REST requests' latency, by transport (websocket, http)",
            ["transport"],
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.fastagi = Histogram(
            "ctm_fastagi_answer_seconds",
            "FastAGI requests: from Asterisk's connection to ctm-pbx's answer",
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.visit_requests = Counter(
            "ctm_visit_api_requests",
            "Visitor API requests, by path and HTTP status",
            ["path", "status"],
            registry=r,
        )
        self.visit_latency = Histogram(
            "ctm_visit_api_seconds",
            "Visitor API requests' latency, by path",
            ["path"],
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.commit = Histogram(
            "ctm_store_commit_seconds",
            "The store writer's commits' latency",
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.reloads = Counter(
            "ctm_config_reloads",
            "Config reloads (SIGHUP), by result (applied, invalid, failed)",
            ["result"],
            registry=r,
        )
        self.store = StoreState([], {})  # refreshed before each scrape
        self._rest_children: dict[str, object] = {}
        self._daemon: Daemon | None = None

    def wire(self, daemon: Daemon) -> None:
        """Set the adapters' hooks, and read the daemon's state at scrape time."""
        self._daemon = daemon
        daemon.handler.on_finished = self.call_finished
        daemon.ari.on_request = self.ari_request
        daemon.writer.on_commit = self.commit.observe
        if daemon.agi is not None:
            daemon.agi.on_finished = self.call_finished
            daemon.agi.on_answer = self.fastagi.observe
        self.registry.register(_StateCollector(daemon, self))

    # -- hooks (the call path: no I/O) -----------------------------------------------

    def call_finished(self, call: FinishedCall) -> None:
        self.calls.labels(call.mode, call.outcome, call.source or "").inc()

    def ari_request(self, transport: str, seconds: float) -> None:
        child = self._rest_children.get(transport)
        if child is None:
            child = self._rest_children[transport] = self.ari_rest.labels(transport)
        child.observe(seconds)  # type: ignore[attr-defined]

    @web.middleware
    async def visit_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """The visitor app's requests: status and latency by route (its canonical path,
        so that a client cannot make new labels)."""
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            resource = request.match_info.route.resource
            path = resource.canonical if resource is not None else NO_PATH
            self.visit_requests.labels(path, str(status)).inc()
            self.visit_latency.labels(path).observe(time.perf_counter() - started)

    # -- scrape ------------------------------------------------------------------------

    async def refresh_store(self, reader: StoreReader) -> None:
        """The pools and outbox destinations of the daemon's config in force (a reload
        swaps it)."""
        if self._daemon is None:
            return
        try:
            self.store = await reader.run(store_state, self._daemon.config, datetime.now(UTC))
        except Exception as exc:  # the rest of the metrics still answer
            log.warning("metrics: pool and outbox state not read: %s", exc)
            self.store = StoreState([], {})

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """Gauges and counters read at scrape time from the daemon's own reports."""

    def __init__(self, daemon: Daemon, metrics: DaemonMetrics) -> None:
        self.daemon = daemon
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # collected fresh each scrape (names known only then)

    def collect(self) -> Iterator[Metric]:
        d = self.daemon
        status = d.status()
        parts = status["components"]
        yield _gauge("ctm_up", "1 while the daemon runs", 1)
        yield _gauge("ctm_tracking_numbers", "Active tracking numbers", status["tracking_numbers"])
        in_progress = GaugeMetricFamily(
            "ctm_calls_in_progress", "Calls in progress, by mode", labels=["mode"]
        )
        if "calls_in_progress" in status:
            in_progress.add_metric(["ari"], status["calls_in_progress"])
        if "agi_calls_in_progress" in status:
            in_progress.add_metric(["agi"], status["agi_calls_in_progress"])
        yield in_progress
        if "ari" in parts:
            yield _gauge(
                "ctm_ari_connected",
                "1 while the ARI event socket is up",
                int(parts["ari"]["connected"]),
            )
            yield _counter(
                "ctm_ari_reconnects", "ARI event socket reconnections", max(0, d.ari.connects - 1)
            )
            yield _counter("ctm_ari_requests", "ARI REST requests sent", status["ari_requests"])
        if d.agi is not None:
            yield _gauge(
                "ctm_ami_connected", "1 while AMI is logged in", int(parts["ami"]["connected"])
            )
            yield _counter(
                "ctm_ami_reconnects", "AMI logins after the first", max(0, d.agi.ami.logins - 1)
            )
            yield _counter(
                "ctm_ami_failed_attempts",
                "AMI connection attempts that failed",
                d.agi.ami.failed_attempts,
            )
            yield _gauge(
                "ctm_fastagi_listening",
                "1 while the FastAGI listener accepts",
                int(parts["fastagi"]["listening"]),
            )
            yield _counter("ctm_fastagi_requests", "FastAGI requests", status["agi_requests"])
            yield _counter(
                "ctm_fastagi_timeouts",
                "FastAGI requests not answered in time",
                status["agi_timeouts"],
            )
        db = parts["database"]
        yield _gauge(
            "ctm_store_writable", "1 while the database can be written", int(bool(db["writable"]))
        )
        yield _gauge("ctm_store_backlog", "Store jobs queued or running", db["backlog"])
        yield _gauge(
            "ctm_store_writes_waiting",
            "Writes kept in memory while the database cannot be written",
            db["writes_waiting"],
        )
        yield _counter(
            "ctm_store_writes_refused",
            "Writes refused past the in-memory bound",
            db["writes_refused"],
        )
        if db["last_commit_age_s"] is not None:
            yield _gauge(
                "ctm_store_last_commit_age_seconds",
                "Seconds since the last commit",
                db["last_commit_age_s"],
            )
        if "web" in parts:
            yield _gauge(
                "ctm_web_connections",
                "Open connections to the visitor API",
                parts["web"]["connections"],
            )
            yield _counter(
                "ctm_web_connections_refused",
                "Connections refused by the visitor API's caps",
                parts["web"]["refused_connections"],
            )
        yield from _pool_metrics(self.metrics.store.pools)
        backlog = GaugeMetricFamily(
            "ctm_outbox_backlog",
            "Outbox events still to send (webhooks, GA4), by destination and state",
            labels=["destination", "state"],
        )
        for (dest, state), n in sorted(self.metrics.store.outbox.items()):
            backlog.add_metric([dest, state], n)
        yield backlog


def _pool_metrics(rows: list[PoolRow]) -> Iterator[Metric]:
    size = GaugeMetricFamily("ctm_pool_numbers", "Numbers in the pool", labels=["pool"])
    state = GaugeMetricFamily(
        "ctm_pool_numbers_by_state",
        "The pool's numbers: held, resting, free",
        labels=["pool", "state"],
    )
    util = GaugeMetricFamily("ctm_pool_utilisation", "Held numbers / pool size", labels=["pool"])
    active = GaugeMetricFamily(
        "ctm_pool_active_leases", "Visitors holding a number now", labels=["pool"]
    )
    shared = GaugeMetricFamily(
        "ctm_pool_shared_leases", "Active leases beyond the first on their number", labels=["pool"]
    )
    leases = CounterMetricFamily("ctm_pool_leases", "Leases handed out", labels=["pool"])
    shares = CounterMetricFamily("ctm_pool_shares", "Leases handed out shared", labels=["pool"])
    overflows = CounterMetricFamily(
        "ctm_pool_overflows", "Visitors shown the overflow number", labels=["pool"]
    )
    drain = CounterMetricFamily(
        "ctm_pool_drain_attempts",
        "Pool-drain defences at work: crawler page views, capped clients, unconfirmed leases",
        labels=["pool", "kind"],
    )
    for row in rows:
        s, c = row.stats, row.counters
        size.add_metric([s.pool], s.size)
        for name, value in (("held", s.held), ("resting", s.resting), ("free", s.free)):
            state.add_metric([s.pool, name], value)
        util.add_metric([s.pool], s.utilisation)
        active.add_metric([s.pool], s.active_leases)
        shared.add_metric([s.pool], s.shared_leases)
        leases.add_metric([s.pool], c.leases)
        shares.add_metric([s.pool], c.shares)
        overflows.add_metric([s.pool], c.overflows)
        for kind, value in (
            ("crawler", c.crawlers),
            ("capped", c.capped),
            ("unconfirmed", c.unconfirmed),
        ):
            drain.add_metric([s.pool, kind], value)
    yield from (size, state, util, active, shared, leases, shares, overflows, drain)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


# -- the route -----------------------------------------------------------------------


def _loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def _authorised(request: web.Request, settings: MetricsSettings) -> bool:
    header = request.headers.get("Authorization", "")
    if settings.token is not None:
        return hmac.compare_digest(header.encode(), f"Bearer {settings.token}".encode())
    if settings.username is not None:
        try:
            given = aiohttp.BasicAuth.decode(header)
        except (ValueError, binascii.Error):
            return False
        same_user = hmac.compare_digest(given.login.encode(), settings.username.encode())
        same_password = hmac.compare_digest(
            given.password.encode(), (settings.password or "").encode()
        )
        return same_user and same_password
    return _loopback(request.remote)


def add_metrics_route(
    app: web.Application,
    metrics: DaemonMetrics,
    settings: MetricsSettings,
    reader: StoreReader,
) -> None:
    """``GET /metrics`` on the dashboard's app (a public route there: it checks its own
    access, not a dashboard session)."""

    async def scrape(request: web.Request) -> web.Response:
        if not _authorised(request, settings):
            if settings.authenticated:
                scheme = "Bearer" if settings.token is not None else "Basic"
                raise web.HTTPUnauthorized(
                    text='{"error": "unauthorized", "message": "metrics need credentials"}',
                    content_type="application/json",
                    headers={"WWW-Authenticate": f'{scheme} realm="ctm-pbx metrics"'},
                )
            raise web.HTTPForbidden(
                text='{"error": "forbidden", "message": "metrics are for loopback clients"}',
                content_type="application/json",
            )
        await metrics.refresh_store(reader)
        body = metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/metrics", scrape, name="metrics")
