"""``ctm-pbx run``: one asyncio process with the call routers (ARI and/or AGI mode)
and the web app."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import resource
import signal
from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import web

try:
    import uvloop
except ImportError:  # not built for this platform: the standard loop
    uvloop = None  # type: ignore[assignment]

from ctm_pbx.adapters import zip_lookup
from ctm_pbx.adapters.agi_calls import AgiCallHandler
from ctm_pbx.adapters.ari_calls import EVENT_TYPES, AriCallHandler
from ctm_pbx.adapters.ari_client import AriClient
from ctm_pbx.adapters.call_spool import CallSpool
from ctm_pbx.adapters.live_inventory import LiveInventory
from ctm_pbx.adapters.outbox_delivery import OutboxDelivery
from ctm_pbx.adapters.store import retention
from ctm_pbx.adapters.store.reader import StoreReader
from ctm_pbx.adapters.store.writer import StoreUnavailable, StoreWriter
from ctm_pbx.adapters.wall_clock import utcnow
from ctm_pbx.core import geo
from ctm_pbx.core.client_address import parse_networks
from ctm_pbx.core.model import Config, GeoRoute
from ctm_pbx.core.retention import cutoffs
from ctm_pbx.edges.dashboard import Dashboard, create_dashboard_app
from ctm_pbx.edges.metrics import DaemonMetrics, add_metrics_route
from ctm_pbx.edges.reload import Reloader
from ctm_pbx.edges.web import VisitApi, create_app
from ctm_pbx.edges.web_listener import ConnectionCaps, GuardedSite, connection_budget

log = logging.getLogger(__name__)

NUMBERS_REFRESH_S = 1.0
DB_HEALTH = ("writable", "unwritable_since", "write_error", "writes_waiting", "writes_refused")
RECONCILE_EVERY_S = 60.0
# a few people's browsers, each with a page or two and its live feed
DASHBOARD_CONNECTIONS = 128
DASHBOARD_CONNECTIONS_PER_CLIENT = 16
PURGE_FIRST_S = 600.0  # the first retention purge, after the start's own work
PURGE_EVERY_S = 24 * 3600.0
PURGE_RETRY_S = 3600.0  # after a purge the database could not take


class _Stopping(Exception):
    """The daemon stops: the purge ends between two batches."""


class Daemon:
    """Wires the call handlers (ARI, AGI), the store writer and the web app."""

    def __init__(self, config: Config, clock: Callable[[], datetime] = utcnow) -> None:
        """``clock``: what the call handlers take as now (tests pin it for business hours)."""
        self.config = config
        a = config.asterisk
        self.writer = StoreWriter(config.database.path)
        self.inventory = LiveInventory(self.writer)
        self.ari = AriClient(a.ari_url, a.username, a.password, a.app)
        self.handler = AriCallHandler(
            config, self.ari, self.writer, clock=clock, inventory=self.inventory
        )
        # every call's line from the dialplan's hangup handler: imported every second
        self.spool = CallSpool(config, self.writer)
        self.handler.collect_spool = self.spool.collect
        self.agi = (
            AgiCallHandler(config, self.writer, self.inventory, clock=clock) if a.uses_agi else None
        )
        if self.agi is not None:  # AGI mode's dialplan writes the spool too
            self.agi.use_spool(self.spool)
        # webhooks and GA4: the call log's events, sent from the outbox (issue 20)
        self.outbox = OutboxDelivery(config, self.writer, clock=clock)
        self.stop = asyncio.Event()
        self.warmed = asyncio.Event()  # the call path's data loaded: calls are taken next
        self._runner: web.AppRunner | None = None
        self._dashboard: web.AppRunner | None = None
        self._reader: StoreReader | None = None
        self.web_caps: ConnectionCaps | None = None
        self.api: VisitApi | None = None
        self.dashboard_state: Dashboard | None = None
        self.metrics = DaemonMetrics()  # /metrics (edges/metrics.py)
        self.metrics.wire(self)
        self.reloader = Reloader(self)  # SIGHUP (edges/reload.py)

    def status(self) -> dict:
        a = self.config.asterisk
        out: dict = {
            "mode": a.mode.value,
            "tracking_numbers": len(self.inventory.numbers),
            "components": self.components(),
        }
        db = self.writer.health()  # db_writable and, while it is not, what waits
        out |= {f"db_{key}": db[key] for key in DB_HEALTH}
        if a.uses_ari:
            out |= self.handler.status()
        if self.agi is not None:
            out |= self.agi.status()
        return out

    def components(self) -> dict:
        """Each part's state for ``/healthz``, with ``ok``; the parts the mode uses."""
        db = self.writer.health()
        out: dict = {"database": {"ok": db["running"] and db["writable"], **db}}
        if self.web_caps is not None:
            caps = self.web_caps
            out["web"] = {
                "ok": True,
                "connections": caps.open,
                "max_connections": caps.total,
                "refused_connections": caps.refused,
            }
        if self.config.asterisk.uses_ari:
            out |= self.handler.components()
        if self.agi is not None:
            out |= self.agi.components()
        if self.outbox.enabled:
            out["outbox"] = {"ok": True, "destinations": self.outbox.health()}
        return out

    async def _on_connect(self) -> None:
        await self.ari.set_event_filter(EVENT_TYPES)
        await self.ari.probe_ws_rest()
        await self.handler.reconcile()

    async def _housekeeping(self) -> None:
        since_reconcile = 0.0
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), NUMBERS_REFRESH_S)
            if self.stop.is_set():
                return
            try:
                await self.inventory.refresh()
                await self.spool.collect()
                since_reconcile += NUMBERS_REFRESH_S
                if since_reconcile >= RECONCILE_EVERY_S:
                    since_reconcile = 0.0
                    if self.config.asterisk.uses_ari and self.ari.connected.is_set():
                        await self.handler.reconcile()
                    if self.agi is not None:
                        await self.agi.reconcile()
            except Exception:
                log.exception("housekeeping failed")

    async def _purge(self, first_s: float = PURGE_FIRST_S) -> None:
        """Retention, once a day (``retention.purge``): its batches go through the writer
        from a worker thread, paced, between the call path's writes."""
        delay = first_s
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), delay)
            if self.stop.is_set():
                return
            delay = PURGE_EVERY_S
            settings = self.config.retention
            if not settings.purge:
                continue
            cut = cutoffs(settings, datetime.now(UTC))
            readable_dir = self.config.asterisk.recordings.readable_dir

            def run(fn, *args):  # noqa: ANN001, ANN202 - a store function and its arguments
                if self.stop.is_set():
                    raise _Stopping
                return self.writer.run_sync(fn, *args)

            try:
                counts, problems = await asyncio.to_thread(
                    retention.purge, retention.paced(run), cut, readable_dir
                )
            except _Stopping:
                return
            except StoreUnavailable as exc:  # a full disk, say: again in an hour
                log.warning("retention purge put off for an hour: %s", exc)
                delay = PURGE_RETRY_S
                continue
            except Exception:
                log.exception("retention purge failed")
                continue
            log.info(retention.summary(counts))
            for problem in problems:
                log.warning("retention purge: %s", problem)

    async def serve(self) -> None:
        a = self.config.asterisk
        await self.inventory.load()
        await self.outbox.start()  # before any call: the writer writes their events from now
        web_cfg = self.config.web
        api = VisitApi(self.config, self.writer, active_numbers=lambda: self.inventory.numbers)
        self.api = api
        app = create_app(self.status, api, middlewares=(self.metrics.visit_middleware,))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.web_caps = ConnectionCaps(
            total=connection_budget(web_cfg.max_connections, fd_limit),
            per_client=web_cfg.max_connections_per_client,
            trusted=parse_networks(web_cfg.trusted_proxies),
        )
        await GuardedSite(self._runner, web_cfg.host, web_cfg.port, self.web_caps).start()
        log.info(
            "ctm-pbx running (%s mode): web on http://%s:%d (at most %d connections, "
            "%d per client), %d tracking numbers",
            a.mode.value,
            web_cfg.host,
            web_cfg.port,
            self.web_caps.total,
            self.web_caps.per_client,
            len(self.inventory.numbers),
        )
        if self.config.dashboard.enabled:
            await self._start_dashboard()
        # the call path's data, before calls come to us (ARI's app, FastAGI); the
        # website's API and the dashboard, which need none of it, answer meanwhile
        await asyncio.to_thread(geo.warm)  # every call locates its caller
        if any(isinstance(r, GeoRoute) and r.ask_zip for r in self.config.routes.values()):
            await asyncio.to_thread(zip_lookup.warm)  # the ZIP dataset: about half a second
        # what the start made (modules, config, datasets) lives as long as the daemon: the
        # cycle collector's full passes, which stop the loop and the calls on it, no
        # longer walk it (bench/README.md, "Pauses of the cycle collector")
        gc.collect()
        gc.freeze()
        self.warmed.set()
        if a.uses_ari:
            await self.ari.start()
        if self.agi is not None:
            await self.agi.start()
        if a.uses_ari:
            log.info("ARI app %s at %s", a.app, a.ari_url)
        tasks = [asyncio.create_task(self._housekeeping()), asyncio.create_task(self._purge())]
        if a.uses_ari:
            tasks.append(
                asyncio.create_task(
                    self.ari.run_events(self.handler.on_event, self._on_connect, self.stop)
                )
            )
        try:
            await self.stop.wait()
        finally:
            log.info("stopping")
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.reloader.wait()
            await self.handler.drain()
            if self.agi is not None:
                await self.agi.close()
            await self.outbox.close()
            await self._runner.cleanup()
            if self._dashboard is not None:
                await self._dashboard.cleanup()
            if self._reader is not None:
                self._reader.close()
            await self.ari.close()
            self.writer.close()
            log.info("stopped")

    async def _start_dashboard(self) -> None:
        """The dashboard on its own listener (never the visitor API's port)."""
        d = self.config.dashboard
        self._reader = StoreReader(self.config.database.path)
        dash = self.dashboard_state = Dashboard(self.config, self._reader, self.writer)
        dash_app = create_dashboard_app(dash)
        if d.metrics.enabled:
            add_metrics_route(dash_app, self.metrics, d.metrics, self._reader)
        self._dashboard = web.AppRunner(dash_app, access_log=None)
        await self._dashboard.setup()
        caps = ConnectionCaps(
            total=DASHBOARD_CONNECTIONS,
            per_client=DASHBOARD_CONNECTIONS_PER_CLIENT,
            trusted=parse_networks(self.config.web.trusted_proxies),
        )
        await GuardedSite(self._dashboard, d.host, d.port, caps).start()
        log.info("dashboard on http://%s:%d", d.host, d.port)
        if d.metrics.enabled:
            who = "with credentials" if d.metrics.authenticated else "loopback clients only"
            log.info("metrics on http://%s:%d/metrics (%s)", d.host, d.port, who)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The daemon's loop: uvloop's where installed. Its sockets, transports and
    timers in C cut ctm-pbx's CPU per call by about a seventh in AGI mode and by
    a quarter in a plain call's AMI events (``bench/ari_routing.py``)."""
    return uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard one (systemd's unit sets both
    with ``LimitNOFILE``; a shell's soft default of 1,024 is too few for a public
    port beside the call path). Returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # equal under the unit: no setrlimit (its syscall filter denies it)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError) as exc:
            log.warning("could not raise the open-files limit from %d: %s", soft, exc)
    return soft


def run_daemon(config: Config) -> None:
    """Run until SIGTERM or SIGINT; SIGHUP reloads the config (edges/reload.py)."""

    async def main() -> None:
        raise_fd_limit()
        daemon = Daemon(config)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, daemon.stop.set)
        loop.add_signal_handler(signal.SIGHUP, daemon.reloader.request)
        await daemon.serve()

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main())
