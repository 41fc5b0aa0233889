"""The web listener against clients that hold connections: idle, slow, many, malformed.

Real sockets on loopback (127.0.0.0/8: each test client its own address), bounded in
number and closed afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import pytest

from ctm_pbx.adapters.config_loader import ConfigError, parse_config
from ctm_pbx.core.client_address import parse_networks
from ctm_pbx.edges.web import create_app
from ctm_pbx.edges.web_listener import ConnectionCaps, connection_budget
from tests.test_web_requests import listen

IDLE_S = 0.5
HEALTH = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


@pytest.fixture
def caps() -> ConnectionCaps:
    return ConnectionCaps(total=12, per_client=4)


@pytest.fixture
async def server(caps: ConnectionCaps):
    async for listening in listen(create_app(dict), caps, idle_timeout=IDLE_S):
        yield listening


async def connect(server, client: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(server.host, server.port, local_addr=(client, 0))


async def closed_after(reader: asyncio.StreamReader, limit_s: float = 3.0) -> float:
    """Seconds until the server closes the connection (what it sent is read and dropped)."""
    start = time.monotonic()
    async with asyncio.timeout(limit_s):
        while await reader.read(4096):
            pass
    return time.monotonic() - start


async def status_of(server, client: str, request: bytes = HEALTH) -> int:
    reader, writer = await connect(server, client)
    try:
        writer.write(request)
        line = await asyncio.wait_for(reader.readline(), 3)
        return int(line.split()[1])
    finally:
        writer.close()


async def test_a_connection_that_sends_nothing_is_closed(server) -> None:
    reader, writer = await connect(server, "127.0.0.2")
    try:
        assert await closed_after(reader) < IDLE_S + 1
    finally:
        writer.close()


async def test_a_request_line_sent_a_byte_at_a_time_does_not_hold_the_connection(server) -> None:
    reader, writer = await connect(server, "127.0.0.2")

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.05)

    dripping = asyncio.create_task(trickle())
    try:
        assert await closed_after(reader) < IDLE_S + 1, "a deadline, not an idle timer"
    finally:
        dripping.cancel()
        writer.close()


async def test_a_keep_alive_connection_is_closed_soon_after_its_response(server) -> None:
    reader, writer = await connect(server, "127.0.0.2")
    try:
        writer.write(HEALTH.replace(b"Connection: close", b"Connection: keep-alive"))
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        assert await closed_after(reader) < IDLE_S + 1
    finally:
        writer.close()


async def test_one_client_cannot_take_the_connections_of_others(server, caps) -> None:
    held = [await connect(server, "127.0.0.2") for _ in range(caps.per_client)]
    try:
        assert await status_of(server, "127.0.0.2") == 429, "over its own cap"
        assert await status_of(server, "127.0.0.3") == 200, "another client is served"
        assert caps.open == caps.per_client
    finally:
        for _, writer in held:
            writer.close()


async def test_the_total_cap_refuses_with_503_and_frees_on_close(server, caps) -> None:
    clients = [f"127.0.0.{10 + i}" for i in range(caps.total // caps.per_client)]
    held = [await connect(server, c) for c in clients for _ in range(caps.per_client)]
    try:
        await asyncio.sleep(0.05)  # every connection accepted
        assert caps.open == caps.total
        assert await status_of(server, "127.0.0.99") == 503
    finally:
        for _, writer in held:
            writer.close()
    for _ in range(100):  # the server sees them close
        if caps.open == 0:
            break
        await asyncio.sleep(0.02)
    assert await status_of(server, "127.0.0.99") == 200, "freed"


async def test_a_trusted_proxy_is_held_to_the_total_cap_only() -> None:
    caps = ConnectionCaps(total=12, per_client=2, trusted=parse_networks(["127.0.0.5"]))
    async for server in listen(create_app(dict), caps, idle_timeout=IDLE_S):
        held = [await connect(server, "127.0.0.5") for _ in range(5)]
        try:
            assert await status_of(server, "127.0.0.5") == 200
        finally:
            for _, writer in held:
                writer.close()


async def test_malformed_requests_get_a_json_400_and_one_short_log_line(server, caplog) -> None:
    bad = b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n"
    caplog.set_level(logging.DEBUG)
    for _ in range(20):
        reader, writer = await connect(server, "127.0.0.2")
        writer.write(bad)
        answer = await asyncio.wait_for(reader.read(), 3)
        writer.close()
        assert (
            answer.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400"))
            and b'"error": "bad_request"' in answer
        )
        assert b"Server: ctm-pbx" in answer
    logged = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert len(logged) == 1 and logged[0].levelname == "WARNING"
    assert not logged[0].exc_info and len(logged[0].getMessage()) < 200


@pytest.mark.parametrize(
    ("configured", "fd_limit", "budget"),
    [(1024, 1024, 512), (1024, 65536, 1024), (100, 1024, 100), (1024, 1, 1)],
)
def test_the_total_cap_leaves_half_the_descriptors(configured, fd_limit, budget) -> None:
    assert connection_budget(configured, fd_limit) == budget


def test_the_caps_are_read_from_the_config(tmp_path) -> None:
    web = "web: {max_connections: 300, max_connections_per_client: 8}\n"
    cfg = parse_config(web, env={}, base_dir=tmp_path)
    assert (cfg.web.max_connections, cfg.web.max_connections_per_client) == (300, 8)
    with pytest.raises(ConfigError, match="max_connections_per_client"):
        parse_config("web: {max_connections_per_client: 0}\n", env={}, base_dir=tmp_path)
