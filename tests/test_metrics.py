"""``/metrics`` of a running daemon, parsed with prometheus_client's own parser.

The daemon runs in ``both`` modes with nothing at the ARI and AMI ports (they keep
retrying); its FastAGI listener takes a request as Asterisk sends it (the fake of
tests/test_agi_adapter.py), AMI events are handed to it as panoramisk would, and
visitors call the real visitor API. Then the scrape must say so.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import logging
import re
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import unused_port
from prometheus_client.parser import text_string_to_metric_families

from ctm_pbx.adapters.config_loader import ConfigError, load_config, parse_config
from ctm_pbx.edges.daemon import Daemon
from ctm_pbx.edges.logs import LogfmtFormatter
from tests.helpers import BROWSER_UA
from tests.test_agi_adapter import agi_request, ami
from tests.test_daemon import cli

SHOP = "https://shop.example.com"
TOKEN = "metrics-token-0123456789"
ARI_PASSWORD = "ari-password-not-for-logs"
AMI_SECRET = "ami-secret-not-for-logs"
CONFIG = """\
asterisk:
  ari_url: "http://127.0.0.1:{ari_port}"
  username: u
  password: {ari_password}
  mode: both
  agi: {{port: {agi_port}}}
  ami: {{port: {ami_port}, secret: {ami_secret}}}
database: {{path: ctm.db}}
web: {{host: 127.0.0.1, port: {web_port}, allowed_origins: ["{shop}"]}}
dashboard:
  host: {dash_host}
  port: {dash_port}
{metrics}
sources:
  google-ads: {{preset: google_ads}}
  billboard: {{kind: offsite}}
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
  - {{number: "+13125550142", source: billboard, route: main}}
"""


def write_config(
    tmp_path: Path,
    metrics: str = "",
    ari_port: int | None = None,
    ami_port: int | None = None,
    dash_host: str = "127.0.0.1",
    extra: str = "",
) -> Path:
    """``extra``: more top-level YAML, after the rest."""
    path = tmp_path / "config.yaml"
    path.write_text(
        extra
        + "\n"
        + CONFIG.format(
            ari_port=ari_port or unused_port(),
            agi_port=unused_port(),
            ami_port=ami_port or unused_port(),
            web_port=unused_port(),
            dash_port=unused_port(),
            dash_host=dash_host,
            shop=SHOP,
            metrics=metrics,
            ari_password=ARI_PASSWORD,
            ami_secret=AMI_SECRET,
        )
    )
    return path


async def start(config_path: Path) -> tuple[Daemon, asyncio.Task]:
    cli(config_path, "db", "migrate")
    d = Daemon(load_config(config_path))
    serving = asyncio.create_task(d.serve())
    url = f"http://127.0.0.1:{d.config.web.port}/healthz/live"
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(url):
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the daemon did not come up")
    return d, serving


@pytest.fixture
async def make_daemon(tmp_path: Path) -> AsyncIterator[Callable]:
    """``await make_daemon(metrics_yaml, ari_port=, ami_port=)``: a running daemon
    (nothing at the ARI and AMI ports unless given), stopped after the test."""
    running: list[tuple[Daemon, asyncio.Task]] = []

    async def make(metrics: str = "", **settings: object) -> Daemon:
        pair = await start(write_config(tmp_path, metrics, **settings))  # type: ignore[arg-type]
        running.append(pair)
        return pair[0]

    yield make
    for d, serving in running:
        d.stop.set()
        await asyncio.wait_for(serving, 10)


def metrics_url(d: Daemon, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{d.config.dashboard.port}/metrics"


def own_address() -> str | None:
    """One of this host's addresses that is not a loopback one (None: it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: the route picks the address
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if ipaddress.ip_address(address).is_loopback else address


async def scrape(d: Daemon, headers: dict | None = None) -> dict[tuple[str, tuple], float]:
    """Every sample: (name, sorted labels) -> value."""
    async with aiohttp.ClientSession() as http, http.get(metrics_url(d), headers=headers) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("text/plain; version=")
        text = await r.text()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def visit(d: Daemon, landing: str, visitor_id: str | None = None) -> dict:
    body = {"visitor_id": visitor_id, "landing_url": landing, "referrer": ""}
    url = f"http://127.0.0.1:{d.config.web.port}/api/visit"
    headers = {"Origin": SHOP, "User-Agent": BROWSER_UA}
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=headers) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def test_scrape_after_visits_and_a_call(make_daemon, caplog) -> None:  # noqa: ANN001
    d = await make_daemon()
    logging.getLogger().addHandler(caplog.handler)  # the CLI's setup_logging replaced it
    caplog.set_level(logging.INFO)
    before = await scrape(d)
    assert before[("ctm_up", ())] == 1
    assert before[("ctm_ari_connected", ())] == 0 and before[("ctm_ami_connected", ())] == 0
    assert before[("ctm_fastagi_listening", ())] == 1
    assert before[("ctm_store_writable", ())] == 1
    assert before[("ctm_tracking_numbers", ())] == 3
    assert before[("ctm_pool_numbers", (("pool", "gads"),))] == 2
    assert before[("ctm_pool_numbers_by_state", (("pool", "gads"), ("state", "free")))] == 2
    assert before[("ctm_pool_utilisation", (("pool", "gads"),))] == 0
    calls = ("ctm_calls_total", (("mode", "agi"), ("outcome", "answered"), ("source", "billboard")))
    assert calls not in before

    # two visitors from Google Ads, one of them back on a second page; one bad request
    first = await visit(d, f"{SHOP}/?gclid=one")
    await visit(d, f"{SHOP}/pricing", first["visitor_id"])
    await visit(d, f"{SHOP}/?gclid=two")
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{d.config.web.port}"
        async with http.post(f"{url}/api/visit", data="{", headers={"Origin": SHOP}) as r:
            assert r.status == 400
        async with http.get(f"{url}/no-such-page") as r:
            assert r.status == 404

    # a call in AGI mode: the dialplan's request, then AMI's events
    await agi_request(d.config.asterisk.agi.port, "u-1", "+13125550142")
    during = await scrape(d)
    assert during[("ctm_calls_in_progress", (("mode", "agi"),))] == 1
    dest = {"DestUniqueid": "d-1", "DestChannel": "PJSIP/phone1-00000002"}
    for msg in (
        ami("DialBegin", "u-1", DialString="phone1", **dest),
        ami("DialEnd", "u-1", DialStatus="ANSWER", **dest),
        ami("Hangup", "u-1", Cause="16"),
    ):
        d.agi.on_ami_event(msg)

    after = await scrape(d)
    assert after[calls] == 1
    assert after[("ctm_calls_in_progress", (("mode", "agi"),))] == 0
    assert after[("ctm_calls_in_progress", (("mode", "ari"),))] == 0
    assert after[("ctm_fastagi_answer_seconds_count", ())] == 1
    assert 0 < after[("ctm_fastagi_answer_seconds_sum", ())] < 2
    assert after[("ctm_fastagi_requests_total", ())] == 1
    visits = ("ctm_visit_api_requests_total", (("path", "/api/visit"), ("status", "200")))
    assert after[visits] == 3
    assert after[("ctm_visit_api_requests_total", (("path", "/api/visit"), ("status", "400")))] == 1
    assert after[("ctm_visit_api_requests_total", (("path", "other"), ("status", "404")))] == 1
    assert after[("ctm_visit_api_seconds_count", (("path", "/api/visit"),))] == 4
    # both visitors hold one of the pool's two numbers
    gads = (("pool", "gads"),)
    assert after[("ctm_pool_numbers_by_state", (("pool", "gads"), ("state", "held")))] == 2
    assert after[("ctm_pool_utilisation", gads)] == 1.0
    assert after[("ctm_pool_active_leases", gads)] == 2
    assert after[("ctm_pool_leases_total", gads)] == 2
    assert after[("ctm_pool_drain_attempts_total", (("kind", "crawler"), ("pool", "gads")))] == 0
    assert after[("ctm_store_commit_seconds_count", ())] > 0
    assert after[("ctm_store_backlog", ())] >= 0

    # the call's one structured line, in logfmt as the daemon writes it
    (line,) = [r for r in caplog.records if r.getMessage() == "call finished"]
    fields = line.fields  # type: ignore[attr-defined]
    assert fields["mode"] == "agi" and fields["did"] == "+13125550142"
    assert fields["source"] == "billboard" and fields["route"] == "main"
    assert fields["outcome"] == "answered" and fields["confidence"] == 1.0
    assert isinstance(fields["id"], int) and fields["ring_s"] >= 0 and fields["talk_s"] >= 0
    text = LogfmtFormatter().format(line)
    assert ' msg="call finished" id=' in text and " did=+13125550142 " in text
    assert "+13125550100" not in text, "no caller number in the log"


async def test_the_outbox_backlog_per_destination_follows_the_deliveries(
    make_daemon,  # noqa: ANN001
) -> None:
    """A call's event waits in the outbox while its webhook answers 503, and leaves it
    when the webhook takes it: ``ctm_outbox_backlog`` says so."""
    accept = asyncio.Event()
    got: list[bytes] = []

    async def hook(request: web.Request) -> web.Response:
        if not accept.is_set():
            return web.Response(status=503)
        got.append(await request.read())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = unused_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    extra = (
        f"webhooks:\n  crm: {{url: 'http://127.0.0.1:{port}/hook',"
        " secret: a-secret-of-sixteen-chars}\n"
        "outbox: {backoff_first_seconds: 1, backoff_max_seconds: 1}\n"
    )
    try:
        d = await make_daemon(extra=extra)
        pending = ("ctm_outbox_backlog", (("destination", "crm"), ("state", "pending")))
        failed = ("ctm_outbox_backlog", (("destination", "crm"), ("state", "failed")))
        before = await scrape(d)
        assert before[pending] == 0 and before[failed] == 0

        await agi_request(d.config.asterisk.agi.port, "u-1", "+13125550142")
        d.agi.on_ami_event(ami("Hangup", "u-1", Cause="16"))  # call.completed, for crm

        async def until(check: Callable[[dict], bool]) -> dict:
            for _ in range(200):
                now = await scrape(d)
                if check(now):
                    return now
                await asyncio.sleep(0.05)
            raise AssertionError(f"never: {now}")

        waiting = await until(lambda m: m[pending] + m[failed] == 1)
        assert waiting[failed] == 1 or waiting[pending] == 1
        await until(lambda m: m[failed] == 1)  # tried, refused: waits for its retry
        accept.set()
        await until(lambda m: m[pending] + m[failed] == 0)
        assert len(got) == 1
    finally:
        await runner.cleanup()


async def test_the_crawler_counter_counts_a_bot_visit(make_daemon) -> None:  # noqa: ANN001
    d = await make_daemon()
    url = f"http://127.0.0.1:{d.config.web.port}/api/visit"
    body = {"landing_url": f"{SHOP}/?gclid=bot", "referrer": ""}
    headers = {"Origin": SHOP, "User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"}
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=headers) as r:
        assert r.status == 200
    d.writer.run_sync(lambda db: None)  # its counters are committed
    after = await scrape(d)
    assert after[("ctm_pool_drain_attempts_total", (("kind", "crawler"), ("pool", "gads")))] == 1
    assert after[("ctm_pool_leases_total", (("pool", "gads"),))] == 0


async def test_without_credentials_only_loopback_clients_may_scrape(make_daemon) -> None:  # noqa: ANN001
    address = own_address()
    if address is None:
        pytest.skip("this host has no address but loopback ones")
    d = await make_daemon(dash_host="0.0.0.0")
    async with aiohttp.ClientSession() as http:
        async with http.get(metrics_url(d, address)) as r:
            assert r.status == 403, "the client is this host's non-loopback address"
            assert (await r.json())["error"] == "forbidden"
        async with http.get(metrics_url(d, "127.0.0.1")) as r:
            assert r.status == 200


async def test_a_token_is_needed_when_configured(make_daemon) -> None:  # noqa: ANN001
    d = await make_daemon(f'  metrics: {{token: "{TOKEN}"}}')
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
            async with http.get(metrics_url(d), headers=headers) as r:
                assert r.status == 401
                assert r.headers["WWW-Authenticate"].startswith("Bearer ")
                assert (await r.json())["error"] == "unauthorized"
    assert (await scrape(d, {"Authorization": f"Bearer {TOKEN}"}))[("ctm_up", ())] == 1


async def test_basic_auth_when_configured(make_daemon) -> None:  # noqa: ANN001
    d = await make_daemon('  metrics: {username: prom, password: "s3cret-pass"}')
    good = base64.b64encode(b"prom:s3cret-pass").decode()
    bad = base64.b64encode(b"prom:wrong").decode()
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": f"Basic {bad}"}, {"Authorization": "Basic !!"}):
            async with http.get(metrics_url(d), headers=headers) as r:
                assert r.status == 401
    assert (await scrape(d, {"Authorization": f"Basic {good}"}))[("ctm_up", ())] == 1


async def test_metrics_can_be_turned_off(make_daemon) -> None:  # noqa: ANN001
    d = await make_daemon("  metrics: {enabled: false}")
    async with (
        aiohttp.ClientSession() as http,
        http.get(metrics_url(d), allow_redirects=False) as r,
    ):
        assert r.status == 303, "no such route: the dashboard asks for a login"


async def test_two_daemons_keep_their_own_registries(make_daemon, tmp_path: Path) -> None:  # noqa: ANN001
    d = await make_daemon()
    await visit(d, f"{SHOP}/?gclid=one")
    other = Daemon(d.config)  # a second daemon in this process: its own registry
    try:
        assert other.metrics.registry is not d.metrics.registry
        text = other.metrics.exposition().decode()
        assert 'ctm_visit_api_requests_total{path="/api/visit"' not in text
    finally:
        other.writer.close()


def test_metrics_settings_are_validated_with_their_lines() -> None:
    text = """\
dashboard:
  metrics:
    token: short
    username: prom
    enabled: maybe
"""
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    messages = str(err.value)
    assert "<string>:3: dashboard.metrics.token: a metrics token needs at least 16" in messages
    assert "<string>:3: dashboard.metrics.token: give a token or a username" in messages
    assert "<string>:4: dashboard.metrics.username: basic auth needs 'password' too" in messages
    assert "<string>:5: dashboard.metrics.enabled:" in messages
    with pytest.raises(ConfigError, match="unknown key|not allowed|unexpected"):
        parse_config("dashboard: {metrics: {tokn: x}}")
    ok = parse_config('dashboard: {metrics: {token: "0123456789abcdef"}}').dashboard.metrics
    assert ok.enabled and ok.authenticated and ok.token == "0123456789abcdef"


async def test_the_grafana_dashboard_charts_only_metrics_the_daemon_exports(make_daemon) -> None:  # noqa: ANN001
    """docs/grafana-dashboard.json: valid JSON whose every expression names metrics of
    this daemon's exposition (a renamed metric would leave a panel empty)."""
    board = json.loads(
        (Path(__file__).parent.parent / "docs" / "grafana-dashboard.json").read_text()
    )
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 20
    d = await make_daemon()
    async with aiohttp.ClientSession() as http, http.get(metrics_url(d)) as r:
        text = await r.text()
    exported = set()
    for family in text_string_to_metric_families(text):
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
        for suffix in suffixes.get(family.type, ("",)):
            exported.add(family.name + suffix)
    used = {name for expr in exprs for name in re.findall(r"\bctm_[a-z_]+", expr)}
    assert used - exported == set()
    families = {"ctm_calls_total", "ctm_pool_utilisation", "ctm_store_commit_seconds_bucket"}
    assert families <= used
