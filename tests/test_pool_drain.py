"""Pool drains through the real API (aiohttp's test client on loopback, a real store).

The per-client request limits are lifted here: what is shown is that the pool
defences alone (the per-client lease cap, unconfirmed leases, crawler detection)
leave an exclusive number for a real visitor who comes afterwards.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner

from ctm_pbx.adapters.config_loader import parse_config
from ctm_pbx.adapters.store import migrate
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.core.ratelimit import RateLimiter
from ctm_pbx.edges.cli import main, sync_config_numbers
from ctm_pbx.edges.web import VisitApi, create_app
from tests.helpers import BROWSER_UA
from tests.test_web_api import SHOP, Clock

POOL = 20
CONFIG = """\
web: {allowed_origins: ["https://shop.example.com"], trusted_proxies: [127.0.0.1, "::1"]}
tracking: {max_leases_per_client: 3, confirm_seconds: 60}
sources:
  google-ads: {preset: google_ads}
  facebook: {preset: facebook}
  direct: {preset: direct}
targets:
  sales: "+1 312 555 0100"
pools:
  gads: {source: google-ads}
  fb: {source: facebook}
receiving_numbers:
  desk: {number: "+13125550101", dial: "PJSIP/phone1"}
routes:
  main: {type: single, targets: [desk]}
tracking_numbers:
  - {number: "+13125550300", source: facebook, route: main}
  - {number: "+13125550301", pool: fb, route: main}
""" + "".join(
    f'  - {{number: "+1312555{2000 + i:04d}", pool: gads, route: main}}\n' for i in range(POOL)
)
TARGET = "+13125550100"


@pytest.fixture
def setup(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(f"database: {{path: {tmp_path / 'ctm.db'}}}\n{CONFIG}", encoding="utf-8")
    cfg = parse_config(path.read_text(), env={}, base_dir=tmp_path)
    writer = StoreWriter(str(tmp_path / "ctm.db"))
    writer.run_sync(migrate)
    writer.run_sync(lambda db: sync_config_numbers(cfg, db))
    yield cfg, writer, path
    writer.close()


@pytest.fixture
async def api(aiohttp_client, setup):
    cfg, writer, path = setup
    clock = Clock()
    unlimited = {"requests": RateLimiter(1e9, 10**9), "new_visitors": RateLimiter(1e9, 10**9)}
    visit_api = VisitApi(cfg, writer, clock=clock, **unlimited)
    client = await aiohttp_client(
        create_app(lambda: {"ari_connected": True}, visit_api),
        headers={"User-Agent": BROWSER_UA, "Origin": SHOP},
    )
    client.clock, client.config_path = clock, path
    return client


async def new_visitor(client, forwarded: str | None = None, ua: str = BROWSER_UA, q="gclid=x"):
    headers = {"User-Agent": ua}
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    resp = await client.post("/api/visit", json={"landing_url": f"{SHOP}/?{q}"}, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def stats(client) -> dict:
    out = CliRunner().invoke(
        main, ["--config", str(client.config_path), "pools", "stats", "--json"]
    )
    assert out.exit_code == 0, out.output
    return {row["pool"]: row for row in json.loads(out.stdout)}


async def drain(client, addresses) -> set[str]:
    taken = set()
    for address in addresses:
        body = await new_visitor(client, address)
        taken.add(body["numbers"][TARGET]["number"])
    return taken


async def test_one_ip_holds_at_most_the_cap(api) -> None:
    taken = await drain(api, ["198.51.100.7"] * 100)
    assert len(taken) == 3, "beyond the cap the client is shown numbers it holds"
    real = await new_visitor(api, "203.0.113.50")
    shown = real["numbers"][TARGET]
    assert not shown["shared"] and shown["number"] not in taken
    assert stats(api)["gads"]["capped_total"] == 97


async def test_many_64s_of_one_48_count_as_one_client(api) -> None:
    addresses = [f"2001:db8:77:{i:x}::1" for i in range(100)]  # 100 different /64s
    taken = await drain(api, addresses)
    assert len(taken) == 3
    real = await new_visitor(api, "2001:db8:78::1")  # another /48
    assert not real["numbers"][TARGET]["shared"]
    assert real["numbers"][TARGET]["number"] not in taken


async def test_a_spoofing_client_behind_a_pass_through_proxy_holds_nothing_for_long(
    api,
) -> None:
    """Every request claims another address: the cap cannot see it, but its leases are
    never confirmed by a heartbeat, so they end after confirm_seconds, and their numbers
    do not rest."""
    taken = await drain(api, [f"192.0.2.{i}, 10.{i}.0.1" for i in range(100)])
    assert len(taken) == POOL, "all numbers taken, as the spoofed addresses are all new"
    during = await new_visitor(api, "203.0.113.50")
    assert during["numbers"][TARGET]["shared"], "while the drain holds them, the pool shares"
    api.clock.now += timedelta(seconds=61)
    real = await new_visitor(api, "203.0.113.51")
    assert not real["numbers"][TARGET]["shared"]
    # the real visitor's page sends its first heartbeat: the number is theirs
    assert real["renew_every_s"] == 10
    api.clock.now += timedelta(seconds=10)
    resp = await api.post("/api/renew", json={"visitor_id": real["visitor_id"]})
    assert (await resp.json())["renew_every_s"] == 60
    api.clock.now += timedelta(minutes=5)
    later = await new_visitor(api, "203.0.113.52")
    assert later["numbers"][TARGET]["number"] != real["numbers"][TARGET]["number"]
    assert not later["numbers"][TARGET]["shared"]
    assert stats(api)["gads"]["unconfirmed_total"] >= 2


@pytest.mark.parametrize(
    "ua",
    [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
        " HeadlessChrome/131.0.0.0 Safari/537.36",
        "Python/3.11 aiohttp/3.11.0",
        "curl/8.5.0",
        "",
    ],
)
async def test_crawlers_never_take_a_pool_number(api, ua) -> None:
    for _ in range(5):
        body = await new_visitor(api, "198.51.100.9", ua=ua)
        assert body["numbers"] == {}, "the page keeps its own number"
        fb = await new_visitor(api, "198.51.100.9", ua=ua, q="fbclid=y")
        assert fb["numbers"][TARGET] == {"number": "+13125550300", "pool": None, "shared": False}
    counted = stats(api)
    assert counted["gads"]["crawlers_total"] == 5 and counted["gads"]["leases_total"] == 0
    assert counted["fb"]["crawlers_total"] == 5 and counted["fb"]["leases_total"] == 0
    real = await new_visitor(api, "198.51.100.9")
    assert real["numbers"][TARGET]["pool"] == "gads"


async def test_a_visitor_adds_a_bounded_number_of_visits(api, setup) -> None:
    cfg, writer, _path = setup
    first = await new_visitor(api, "198.51.100.20")
    for i in range(cfg.tracking.max_visits_per_day + 30):
        body = {"visitor_id": first["visitor_id"], "landing_url": f"{SHOP}/?gclid=new{i}"}
        resp = await api.post("/api/visit", json=body)
        assert resp.status == 200
    api.app  # noqa: B018 - keep the client alive until the rows are read
    rows = writer.run_sync(
        lambda db: db.execute(
            "SELECT count(*), sum(pages) FROM visits WHERE visitor_id = ?", [first["visitor_id"]]
        ).fetchone()
    )
    assert rows[0] == cfg.tracking.max_visits_per_day
    assert rows[1] == cfg.tracking.max_visits_per_day + 31, "the rest are page views"
    api.clock.now += timedelta(days=1, minutes=1)
    resp = await api.post(
        "/api/visit", json={"visitor_id": first["visitor_id"], "landing_url": f"{SHOP}/?gclid=z"}
    )
    assert resp.status == 200
    count = writer.run_sync(
        lambda db: db.execute(
            "SELECT count(*) FROM visits WHERE visitor_id = ?", [first["visitor_id"]]
        ).fetchone()[0]
    )
    assert count == cfg.tracking.max_visits_per_day + 1, "a day later it may start visits again"
