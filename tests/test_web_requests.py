"""Requests as hostile or unlucky clients send them: bodies in several TCP segments,
a body that is not what its Content-Encoding says, a forged Host, a wrong method;
and what every response says of the server."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import unused_port

from ctm_pbx.adapters.config_loader import parse_config
from ctm_pbx.adapters.store import migrate
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.edges.cli import sync_config_numbers
from ctm_pbx.edges.web import VisitApi, create_app, own_origins
from ctm_pbx.edges.web_listener import ConnectionCaps, GuardedSite

CONFIG = """\
web: {host: 127.0.0.1, port: 8080, allowed_origins: ["https://shop.example.com"]}
sources:
  google-ads: {preset: google_ads}
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
"""
SHOP = "https://shop.example.com"


@pytest.fixture
def api(tmp_path):
    cfg = parse_config(CONFIG, env={}, base_dir=tmp_path)
    writer = StoreWriter(str(tmp_path / "ctm.db"))
    writer.run_sync(migrate)
    writer.run_sync(lambda db: sync_config_numbers(cfg, db))
    yield VisitApi(cfg, writer, body_timeout_s=0.5)
    writer.close()


@dataclass
class Listening:
    host: str
    port: int
    site: GuardedSite


async def listen(app: web.Application, caps: ConnectionCaps | None = None, **kw) -> AsyncIterator:
    """``app`` behind the daemon's listener on a free loopback port."""
    runner = web.AppRunner(app)
    await runner.setup()
    port = unused_port()
    site = GuardedSite(runner, "127.0.0.1", port, caps or ConnectionCaps(), **kw)
    await site.start()
    try:
        yield Listening("127.0.0.1", port, site)
    finally:
        await runner.cleanup()


@pytest.fixture
async def server(api):
    async for listening in listen(create_app(dict, api)):
        yield listening


async def exchange(server, *parts: bytes, pause_s: float = 0.2) -> tuple[int, dict, bytes]:
    """Send ``parts`` as separate TCP segments, ``pause_s`` apart; the response."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        for i, part in enumerate(parts):
            if i:
                await asyncio.sleep(pause_s)
            writer.write(part)
            await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def post(path: str, body: bytes, *extra: str) -> bytes:
    head = [
        f"POST {path} HTTP/1.1",
        "Host: api.example.com",
        f"Origin: {SHOP}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *extra,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def test_a_body_in_two_segments_is_read_whole(server) -> None:
    landing = f"{SHOP}/landing?gclid=" + "x" * 1900
    request = post("/api/visit", json.dumps({"landing_url": landing}).encode())
    cut = len(request) - 1000  # the headers and half the body, then the rest
    status, _, body = await exchange(server, request[:cut], request[cut:])
    assert status == 200, body
    assert json.loads(body)["source"] == "google-ads"


async def test_a_body_that_never_completes_is_a_408(server) -> None:
    request = post("/api/visit", b'{"landing_url": "https://shop.example.com/"}')
    status, _, body = await exchange(server, request[:-10])  # and then nothing
    assert status == 408 and json.loads(body)["error"] == "body_timeout"


async def test_a_body_that_is_not_the_gzip_it_claims_is_a_400(server, caplog) -> None:
    request = post("/api/visit", b'{"landing_url": "x"}', "Content-Encoding: gzip")
    status, _, body = await exchange(server, request)
    assert status == 400 and json.loads(body)["error"] == "invalid_body"
    assert not [r for r in caplog.records if r.levelname == "ERROR"], "no traceback"


async def test_a_client_that_leaves_mid_body_leaves_no_traceback(server, caplog) -> None:
    _, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(post("/api/visit", b'{"landing_url": "https://shop.example.com/"}')[:-10])
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.transport.abort()
    await asyncio.sleep(0.3)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_same_origin_comes_from_the_config_not_the_host_header(server) -> None:
    body = json.dumps({"landing_url": "http://evil.example/"}).encode()
    forged = post("/api/visit", body).replace(
        f"Origin: {SHOP}".encode(), b"Origin: http://evil.example"
    )
    forged = forged.replace(b"Host: api.example.com", b"Host: evil.example")
    status, headers, answer = await exchange(server, forged)
    assert status == 403 and json.loads(answer)["error"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in headers
    # the listener's own origin, from web.host and web.port: its demo page calls the API
    own = post("/api/visit", json.dumps({"landing_url": "http://127.0.0.1:8080/demo"}).encode())
    own = own.replace(f"Origin: {SHOP}".encode(), b"Origin: http://127.0.0.1:8080")
    status, headers, _ = await exchange(server, own)
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("host", "port", "origins"),
    [
        ("127.0.0.1", 8080, ("http://127.0.0.1:8080", "http://localhost:8080")),
        ("::1", 8080, ("http://[::1]:8080", "http://localhost:8080")),
        ("ctm.example.com", 80, ("http://ctm.example.com",)),
        ("ctm.example.com", 8080, ("http://ctm.example.com:8080",)),
        ("0.0.0.0", 8080, ()),
        ("::", 8080, ()),
    ],
)
def test_own_origins(host: str, port: int, origins: tuple[str, ...]) -> None:
    assert own_origins(host, port) == origins


async def test_responses_do_not_name_python_or_aiohttp(server) -> None:
    get = b"GET /swap.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    for request in (get, post("/api/visit", b"{"), get.replace(b"/swap.js", b"/nope")):
        _, headers, _ = await exchange(server, request)
        assert headers["Server"] == "ctm-pbx"


async def test_a_405_says_what_is_allowed(server) -> None:
    status, headers, body = await exchange(
        server, b"DELETE /api/visit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert status == 405 and json.loads(body)["error"] == "method_not_allowed"
    assert set(headers["Allow"].split(",")) == {"POST", "OPTIONS"}
