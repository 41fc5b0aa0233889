"""The ARI client's reconnection: back within a second of ARI answering again.

A real aiohttp server on loopback plays Asterisk: first nothing listens on the
port (connection refused, as while Asterisk restarts), or it answers 503 (a
booting Asterisk), then it accepts the event socket.
"""

from __future__ import annotations

import asyncio
import socket
import time

from aiohttp import web

from ctm_pbx.adapters.ari_client import AriClient

REFUSED_S = 3.5  # long enough for an exponential backoff to wait more than a second


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ari:
    """The event socket; the first ``busy`` connections get 503."""

    def __init__(self, busy: int = 0) -> None:
        self.busy = busy
        self.refused = 0
        self.connected_at: float | None = None

    async def events(self, request: web.Request) -> web.StreamResponse:
        if self.busy > 0:
            self.busy -= 1
            self.refused += 1
            return web.Response(status=503, text="Asterisk is booting")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if self.connected_at is None:
            self.connected_at = time.monotonic()
        async for _msg in ws:
            pass
        return ws

    async def start(self, port: int) -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/ari/events", self.events)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner


async def run_client(port: int, stop: asyncio.Event) -> asyncio.Task:
    client = AriClient(f"http://127.0.0.1:{port}", "ctm", "secret", "ctm-pbx")
    await client.start()

    async def on_connect() -> None:
        return None

    async def run() -> None:
        try:
            await client.run_events(lambda _e: None, on_connect, stop)
        finally:
            await client.close()

    return asyncio.create_task(run())


async def test_reconnects_within_a_second_of_a_refused_port_listening_again() -> None:
    port, ari, stop = free_port(), Ari(), asyncio.Event()
    task = await run_client(port, stop)
    await asyncio.sleep(REFUSED_S)  # connection refused meanwhile
    listening = time.monotonic()
    runner = await ari.start(port)
    try:
        for _ in range(300):
            if ari.connected_at is not None:
                break
            await asyncio.sleep(0.01)
        assert ari.connected_at is not None, "not reconnected within 3 s"
        assert ari.connected_at - listening < 1.0
    finally:
        stop.set()
        await task
        await runner.cleanup()


async def test_a_booting_asterisk_503_is_retried_at_once() -> None:
    port, ari, stop = free_port(), Ari(busy=12), asyncio.Event()
    runner = await ari.start(port)
    started = time.monotonic()
    task = await run_client(port, stop)
    try:
        for _ in range(300):
            if ari.connected_at is not None:
                break
            await asyncio.sleep(0.01)
        assert ari.refused == 12
        assert ari.connected_at is not None, "not connected within 3 s"
        # twelve 503s in a row cost well under a second, not a growing backoff
        assert ari.connected_at - started < 1.5
    finally:
        stop.set()
        await task
        await runner.cleanup()
