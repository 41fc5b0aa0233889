"""The tracking API through aiohttp's test client, on a real SQLite store."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from ctm_pbx.adapters.call_attribution import attribute_call
from ctm_pbx.adapters.config_loader import parse_config
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store import migrate
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.core.call.actions import StartCall
from ctm_pbx.core.clock import iso
from ctm_pbx.edges.cli import main, sync_config_numbers
from ctm_pbx.edges.web import VisitApi, create_app
from tests.helpers import BROWSER_UA

CONFIG = """\
web: {allowed_origins: ["https://shop.example.com"], trusted_proxies: [127.0.0.1]}
sources:
  google-ads: {preset: google_ads}
  facebook: {preset: facebook}
  direct: {preset: direct}
  billboard: {kind: offsite}
targets:
  sales: "+1 312 555 0100"
pools:
  gads: {source: google-ads}
receiving_numbers:
  desk: {number: "+13125550101", dial: "PJSIP/phone1"}
routes:
  main: {type: single, targets: [desk]}
tracking_numbers:
  - {number: "+13125550150", pool: gads, route: main}
  - {number: "+13125550151", pool: gads, route: main}
  - {number: "+13125550160", source: facebook, route: main}
  - {number: "+13125550170", source: billboard, route: main}
"""
SHOP = "https://shop.example.com"
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def cfg(tmp_path):
    return parse_config(CONFIG, env={}, base_dir=tmp_path)


@pytest.fixture
def writer(cfg, tmp_path):
    w = StoreWriter(str(tmp_path / "ctm.db"))
    w.run_sync(migrate)
    w.run_sync(lambda db: sync_config_numbers(cfg, db))
    yield w
    w.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(aiohttp_client, cfg, writer, clock):
    api = VisitApi(cfg, writer, clock=clock)
    return await aiohttp_client(
        create_app(lambda: {"ari_connected": True}, api), headers={"User-Agent": BROWSER_UA}
    )


async def visit(client, landing, referrer="", visitor_id=None, origin=SHOP):
    body = {"visitor_id": visitor_id, "landing_url": landing, "referrer": referrer}
    resp = await client.post("/api/visit", json=body, headers={"Origin": origin})
    return resp.status, await resp.json()


async def test_ads_visitor_gets_a_pool_number_and_keeps_it(client, clock) -> None:
    status, first = await visit(client, f"{SHOP}/?gclid=abc123")
    assert status == 200
    assert first["source"] == "google-ads" and "gclid" in first["rule"]
    shown = first["numbers"]["+13125550100"]
    assert shown["pool"] == "gads" and shown["number"] in ("+13125550150", "+13125550151")
    clock.now += timedelta(minutes=2)
    _, again = await visit(client, f"{SHOP}/pricing", SHOP + "/", first["visitor_id"])
    assert again["visitor_id"] == first["visitor_id"]
    assert again["source"] == "google-ads", "first touch kept on later pages"
    assert again["numbers"]["+13125550100"]["number"] == shown["number"]


async def test_two_visitors_get_different_numbers_then_share(client) -> None:
    got = []
    for i in range(3):
        _, body = await visit(client, f"{SHOP}/?gclid=v{i}")
        got.append(body["numbers"]["+13125550100"])
    assert got[0]["number"] != got[1]["number"]
    assert got[2]["shared"] is True, "an exhausted pool shares, never shows nothing"


async def test_source_level_and_direct_visitors(client) -> None:
    _, fb = await visit(client, f"{SHOP}/?fbclid=x")
    assert fb["numbers"]["+13125550100"]["number"] == "+13125550160"
    _, direct = await visit(client, f"{SHOP}/")
    assert direct["source"] == "direct" and direct["numbers"] == {}


async def test_renew_extends_the_lease(client, clock) -> None:
    _, first = await visit(client, f"{SHOP}/?gclid=r")
    clock.now += timedelta(minutes=20)
    resp = await client.post("/api/renew", json={"visitor_id": first["visitor_id"]})
    assert resp.status == 200
    renewed = await resp.json()
    assert renewed["numbers"] == first["numbers"] and renewed["numbers"]
    assert renewed["expires_at"] > first["expires_at"]


async def test_cors_for_allowed_origins_only(client) -> None:
    resp = await client.options(
        "/api/visit", headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"}
    )
    assert resp.status == 204 and resp.headers["Access-Control-Allow-Origin"] == SHOP
    status, body = await visit(
        client, "https://evil.example/?gclid=1", origin="https://evil.example"
    )
    assert status == 403 and body["error"] == "origin_not_allowed"


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_json"),
        (b"\xff\xfe", 400, "invalid_json"),
        (json.dumps({"referrer": "x"}).encode(), 400, "missing_field"),
        (json.dumps({"landing_url": 42}).encode(), 400, "invalid_field"),
        (json.dumps({"landing_url": "javascript:alert(1)"}).encode(), 400, "invalid_field"),
        (json.dumps({"landing_url": "https://" + "a" * 5000}).encode(), 400, "invalid_field"),
        (
            json.dumps({"landing_url": SHOP, "visitor_id": "../../etc"}).encode(),
            400,
            "invalid_field",
        ),
        (json.dumps({"landing_url": SHOP, "referrer": ["x"]}).encode(), 400, "invalid_field"),
        (b"{" + b'"a": "' + b"x" * 20000 + b'"}', 413, "body_too_large"),
        (json.dumps({"landing_url": "http://[::1/x"}).encode(), 400, "invalid_field"),
        (b"[" * 15000, 400, "invalid_json"),
        (b'{"landing_url": "https://shop.example.com/\\ud800"}', 400, "invalid_field"),
        (
            b'{"landing_url": "https://shop.example.com/", "referrer": "\\udfff"}',
            400,
            "invalid_field",
        ),
    ],
    ids=[
        "malformed",
        "not an object",
        "not utf-8",
        "missing landing",
        "wrong type",
        "not http",
        "absurd url",
        "bad visitor id",
        "referrer list",
        "huge body",
        "unclosed ipv6 host",
        "nested past the stack",
        "lone surrogate",
        "lone surrogate in referrer",
    ],
)
async def test_bad_input_is_a_json_4xx(client, body, status, error) -> None:
    resp = await client.post(
        "/api/visit", data=body, headers={"Origin": SHOP, "Content-Type": "application/json"}
    )
    assert resp.status == status
    assert (await resp.json())["error"] == error


async def test_a_user_agent_that_is_not_utf8_is_stored_readably(client, writer) -> None:
    """Bots send raw bytes in headers (aiohttp hands them over as lone surrogates)."""
    body = json.dumps({"landing_url": f"{SHOP}/?gclid=ua"}).encode()
    head = (
        b"POST /api/visit HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Origin: " + SHOP.encode() + b"\r\nUser-Agent: Mozilla/5.0 \xff\xfe\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    reader, sock = await asyncio.open_connection("127.0.0.1", client.port)
    sock.write(head + body)
    raw = await reader.read()
    sock.close()
    status, _, rest = raw.partition(b"\r\n")
    assert b" 200 " in status, raw[:300]
    vid = json.loads(rest.partition(b"\r\n\r\n")[2])["visitor_id"]
    stored = writer.run_sync(
        lambda db: db.execute(
            "SELECT user_agent FROM visits WHERE visitor_id = ?", [vid]
        ).fetchone()
    )
    assert stored[0].startswith("Mozilla/5.0 ")


async def test_renew_needs_a_visitor(client) -> None:
    resp = await client.post("/api/renew", json={})
    assert resp.status == 400 and (await resp.json())["error"] == "missing_field"


async def test_new_visitors_are_rate_limited_per_ip(client) -> None:
    codes = [(await visit(client, f"{SHOP}/?gclid=bot{i}"))[0] for i in range(25)]
    assert codes[:20] == [200] * 20 and 429 in codes[20:]
    resp = await client.post("/api/visit", json={"landing_url": SHOP})
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1


async def test_made_up_visitor_ids_count_as_new_visitors(client, writer) -> None:
    """A bot cannot skip the new-visitor limit by sending ids of its own making."""
    codes = [
        (await visit(client, f"{SHOP}/?gclid=bot{i}", visitor_id=f"madeup{i:04d}x"))[0]
        for i in range(25)
    ]
    assert codes[:20] == [200] * 20 and codes[20:] == [429] * 5
    stored = writer.run_sync(lambda db: db.execute("SELECT COUNT(*) FROM visitors").fetchone())
    assert stored[0] == 20
    # an id it sent before is no better: the store gave that visitor an id of its own
    status, body = await visit(client, f"{SHOP}/?gclid=bot0", visitor_id="madeup0000x")
    assert status == 429 and body["error"] == "rate_limited"


async def test_concurrent_new_visitors_cannot_all_pass_the_limit(client, writer) -> None:
    body = {"landing_url": f"{SHOP}/?gclid=rush"}

    async def one() -> int:
        return (await client.post("/api/visit", json=body, headers={"Origin": SHOP})).status

    codes = await asyncio.gather(*(one() for _ in range(40)))
    stored = writer.run_sync(lambda db: db.execute("SELECT COUNT(*) FROM visitors").fetchone())
    assert stored[0] == codes.count(200) == 20


async def test_returning_visitors_pass_while_new_ones_are_limited(client) -> None:
    _, known = await visit(client, f"{SHOP}/?gclid=real")
    for i in range(25):
        await visit(client, f"{SHOP}/?gclid=bot{i}")
    status, again = await visit(client, f"{SHOP}/pricing", visitor_id=known["visitor_id"])
    assert status == 200 and again["numbers"] == known["numbers"]


async def test_behind_a_proxy_each_forwarded_client_has_its_own_limit(client) -> None:
    """The test client connects from 127.0.0.1, a trusted proxy in this config."""

    async def from_client(address: str, i: int) -> int:
        body = {"landing_url": f"{SHOP}/?gclid={address}-{i}"}
        headers = {"Origin": SHOP, "X-Forwarded-For": f"1.2.3.4, {address}"}
        return (await client.post("/api/visit", json=body, headers=headers)).status

    first = [await from_client("203.0.113.9", i) for i in range(22)]
    # a forged line of its own, before the one the proxy added, changes nothing
    forged = await client.post(
        "/api/visit",
        json={"landing_url": f"{SHOP}/?gclid=forged"},
        headers=[
            ("Origin", SHOP),
            ("X-Forwarded-For", "9.9.9.9"),
            ("X-Forwarded-For", "203.0.113.9"),
        ],
    )
    assert forged.status == 429
    assert first[:20] == [200] * 20 and first[20:] == [429, 429]
    assert await from_client("198.51.100.7", 0) == 200, "another client behind the proxy"
    # an IPv6 client cannot walk its /64 to get fresh buckets
    v6 = [await from_client(f"2001:db8:7:7::{i:x}", i) for i in range(22)]
    assert v6[20:] == [429, 429]


async def test_requests_are_rate_limited_per_client(aiohttp_client, cfg, writer, clock) -> None:
    """10 requests/s with bursts of 60, whatever they are."""
    ticks = [100.0]
    api = VisitApi(cfg, writer, clock=clock, ticks=lambda: ticks[0])
    client = await aiohttp_client(
        create_app(lambda: {"ari_connected": True}, api), headers={"User-Agent": BROWSER_UA}
    )
    _, first = await visit(client, f"{SHOP}/?gclid=busy")
    body = {"visitor_id": first["visitor_id"]}
    codes = [(await client.post("/api/renew", json=body)).status for _ in range(61)]
    assert codes[:59] == [200] * 59 and codes[59:] == [429, 429]
    resp = await client.post("/api/renew", json=body)
    assert resp.status == 429 and resp.headers["Retry-After"] == "1"
    ticks[0] += 0.15  # 1.5 requests later at 10/s: one more
    assert (await client.post("/api/renew", json=body)).status == 200
    assert (await client.post("/api/renew", json=body)).status == 429


async def test_without_trusted_proxies_x_forwarded_for_is_ignored(
    aiohttp_client, writer, tmp_path
) -> None:
    cfg = parse_config(
        CONFIG.replace(", trusted_proxies: [127.0.0.1]", ""), env={}, base_dir=tmp_path
    )
    assert cfg.web.trusted_proxies == ()
    client = await aiohttp_client(
        create_app(lambda: {}, VisitApi(cfg, writer)), headers={"User-Agent": BROWSER_UA}
    )
    codes = []
    for i in range(21):
        body = {"landing_url": f"{SHOP}/?gclid=x{i}"}
        headers = {"Origin": SHOP, "X-Forwarded-For": f"203.0.113.{i}"}
        codes.append((await client.post("/api/visit", json=body, headers=headers)).status)
    assert codes[:20] == [200] * 20 and codes[20] == 429


async def test_renewing_an_unknown_visitor_is_a_404(client) -> None:
    resp = await client.post("/api/renew", json={"visitor_id": "neverseen0001"})
    assert resp.status == 404 and (await resp.json())["error"] == "unknown_visitor"


async def test_swap_script_is_cacheable(client) -> None:
    resp = await client.get("/swap.js")
    assert resp.status == 200 and "javascript" in resp.headers["Content-Type"]
    etag = resp.headers["ETag"]
    again = await client.get("/swap.js", headers={"If-None-Match": etag})
    assert again.status == 304
    demo = await client.get("/demo")
    assert demo.status == 200 and "swap.js" in await demo.text()


async def test_call_to_a_pool_number_is_attributed_to_the_visitor(
    client, cfg, writer, clock
) -> None:
    _, ads = await visit(client, f"{SHOP}/?gclid=CALLME&utm_source=google&utm_medium=cpc")
    number = ads["numbers"]["+13125550100"]["number"]
    call_at = clock.now + timedelta(minutes=3)

    def log_call(db, caller, n):
        start = StartCall(iso(call_at), number, caller, None, "google-ads", "gads", "main")
        call_id = call_store.insert_call(db, start, channel_id=f"c-{n}", linkedid=None)
        attribute_call(db, cfg, call_id, start, call_at)
        return call_store.get_call(db, call_id)

    row = writer.run_sync(log_call, "+13125550999", 1)
    assert row["visitor_id"] == ads["visitor_id"]
    assert row["click_ids"] == {"gclid": "CALLME"} and row["utm_medium"] == "cpc"
    assert row["attribution_confidence"] >= 0.9 and row["attribution_reason"]
    assert row["landing_url"].endswith("gclid=CALLME&utm_source=google&utm_medium=cpc")
    again = writer.run_sync(log_call, "+13125550999", 2)  # the same caller calls again
    assert again["previous_call_id"] == row["id"]


async def test_calls_show_displays_the_attribution(
    aiohttp_client, cfg, writer, clock, tmp_path
) -> None:
    """A visitor's pages (answered from memory, written in a batch) reach the call row, and
    `ctm-pbx calls show` prints the attribution, the candidates of a shared number included."""
    api = VisitApi(cfg, writer, clock=clock)
    client = await aiohttp_client(
        create_app(lambda: {"ari_connected": True}, api), headers={"User-Agent": BROWSER_UA}
    )
    landing = f"{SHOP}/?gclid=SHOWME&utm_source=google&utm_medium=cpc&utm_campaign=spring"
    _, first = await visit(client, landing)
    vid = first["visitor_id"]
    for path in ("/pricing", "/contact"):
        clock.now += timedelta(seconds=30)
        status, again = await visit(client, f"{SHOP}{path}", f"{SHOP}/", visitor_id=vid)
        assert status == 200 and again["numbers"] == first["numbers"]
    api.desk.flush()
    number = first["numbers"]["+13125550100"]["number"]

    def log_call(db, to: str, n: int) -> int:
        at = clock.now + timedelta(seconds=30)  # before an unconfirmed lease expires
        start = StartCall(iso(at), to, f"+1312555099{n}", None, "google-ads", "gads", "main")
        call_id = call_store.insert_call(db, start, channel_id=f"show-{n}", linkedid=None)
        attribute_call(db, cfg, call_id, start, at)
        return call_id

    exclusive = writer.run_sync(log_call, number, 1)
    # two more ad visitors: the pool has two numbers, so the third shares one
    _, second = await visit(client, f"{SHOP}/?gclid=SECOND")
    _, third = await visit(client, f"{SHOP}/?gclid=THIRD")
    assert third["numbers"]["+13125550100"]["shared"]
    shared = writer.run_sync(log_call, third["numbers"]["+13125550100"]["number"], 2)

    conf = tmp_path / "cli.yaml"
    conf.write_text(f"database: {{path: {tmp_path / 'ctm.db'}}}\n{CONFIG}", encoding="utf-8")
    runner = CliRunner()
    out = runner.invoke(main, ["--config", str(conf), "calls", "show", str(exclusive)])
    assert out.exit_code == 0, out.output
    fields = dict(
        (k.strip(), v.strip())
        for k, _, v in (line.partition(":") for line in out.output.splitlines())
    )
    assert fields["visitor_id"] == vid and fields["pages"] == "3"
    assert fields["utm_campaign"] == "spring" and "SHOWME" in fields["click_ids"]
    assert fields["source"] == "google-ads" and float(fields["attribution_confidence"]) >= 0.9
    assert fields["attribution_reason"].startswith("the only visitor who had this number;")
    assert "chance it is someone else" in fields["attribution_reason"]
    out = runner.invoke(main, ["--config", str(conf), "calls", "show", str(shared)])
    assert out.exit_code == 0, out.output
    candidates = [line for line in out.output.splitlines() if "candidate visitor" in line]
    assert len(candidates) == 2 and any(third["visitor_id"] in line for line in candidates)
    assert "shared with 1 other visitor (1 with the page open)" in out.output
    assert "someone else (not a visitor of the window): p=" in out.output
