"""A thin ARI client on aiohttp: REST requests and the event WebSocket.

Why not a library: the PyPI ``ari`` package does not import on Python 3;
``aioari`` wraps every request in a Swagger model layer (more CPU per call, and
its resource objects hide the status codes we act on); ``asyncari`` brings anyio
and httpx beside our aiohttp. ctm-pbx needs a handful of endpoints, so it talks
to them directly and keeps every request visible.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

log = logging.getLogger(__name__)

EventHandler = Callable[[dict], None]
ConnectHandler = Callable[[], Awaitable[None]]


class AriError(Exception):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"ARI {method} {path} -> {status} {body[:200]}")
        self.status = status


@dataclass
class Backoff:
    """Exponential backoff with jitter between reconnection attempts."""

    initial: float = 0.2
    maximum: float = 10.0
    _next: float = 0.0

    def reset(self) -> None:
        self._next = 0.0

    def delay(self) -> float:
        self._next = self.initial if self._next == 0 else min(self.maximum, self._next * 2)
        return self._next * random.uniform(0.8, 1.2)


class AriClient:
    """REST calls and the event stream of one Stasis application."""

    def __init__(self, base_url: str, username: str, password: str, app: str) -> None:
        self.base = base_url.rstrip("/")
        if not self.base.endswith("/ari"):
            self.base += "/ari"
        self.app = app
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self._session: aiohttp.ClientSession | None = None
        self.connected = asyncio.Event()
        self.requests_sent = 0  # for benchmarks: REST requests per call

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=64, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=10),
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- REST -----------------------------------------------------------------

    async def request(self, method: str, path: str, **params: Any) -> Any:
        """One REST request; returns the decoded JSON (or None); raises AriError."""
        assert self._session is not None, "start() first"
        clean = {k: v for k, v in params.items() if v is not None}
        url = f"{self.base}{path}"
        if clean:
            url += "?" + urlencode(clean)
        self.requests_sent += 1
        async with self._session.request(method, url) as resp:
            body = await resp.text()
            if resp.status >= 300:
                raise AriError(method, path, resp.status, body)
            return json.loads(body) if body else None

    async def continue_in_dialplan(
        self, channel_id: str, context: str, extension: str, priority: int = 1
    ) -> None:
        await self.request(
            "POST",
            f"/channels/{channel_id}/continue",
            context=context,
            extension=extension,
            priority=priority,
        )

    async def set_channel_var(self, channel_id: str, name: str, value: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/variable", variable=name, value=value)

    async def get_global(self, name: str) -> str:
        """A global dialplan variable ("" when unset)."""
        data = await self.request("GET", "/asterisk/variable", variable=name)
        return (data or {}).get("value", "")

    async def delete_global(self, name: str) -> None:
        """Remove a global dialplan variable (a set without a value deletes it)."""
        await self.request("POST", "/asterisk/variable", variable=name)

    async def channels(self) -> list[dict]:
        return await self.request("GET", "/channels") or []

    async def application(self) -> dict:
        return await self.request("GET", f"/applications/{self.app}") or {}

    async def set_event_filter(self, allowed: list[str]) -> None:
        """Ask Asterisk to send only these event types (fewer events per call)."""
        body = {"allowed": [{"type": t} for t in allowed]}
        assert self._session is not None
        self.requests_sent += 1
        async with self._session.put(
            f"{self.base}/applications/{self.app}/eventFilter", json=body
        ) as resp:
            if resp.status >= 300:
                log.warning("event filter not accepted: %s %s", resp.status, await resp.text())

    # -- events -----------------------------------------------------------------

    async def run_events(
        self,
        on_event: EventHandler,
        on_connect: ConnectHandler,
        stop: asyncio.Event,
        backoff: Backoff | None = None,
    ) -> None:
        """Receive events until ``stop`` is set, reconnecting with backoff."""
        backoff = backoff or Backoff()
        assert self._session is not None
        query = urlencode({"app": self.app, "subscribeAll": "false"})
        url = f"{self.base}/events?{query}"
        while not stop.is_set():
            try:
                async with self._session.ws_connect(
                    url, heartbeat=15, timeout=aiohttp.ClientWSTimeout(ws_close=5)
                ) as ws:
                    log.info("connected to ARI as app %s", self.app)
                    backoff.reset()
                    self.connected.set()
                    await on_connect()
                    await self._pump(ws, on_event, stop)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.warning("ARI connection failed: %s", exc)
            finally:
                if self.connected.is_set():
                    log.warning("disconnected from ARI; calls take the dialplan fail-safe")
                self.connected.clear()
            if stop.is_set():
                break
            delay = backoff.delay()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)

    async def _pump(
        self, ws: aiohttp.ClientWebSocketResponse, on_event: EventHandler, stop: asyncio.Event
    ) -> None:
        async def close_on_stop() -> None:
            await stop.wait()
            await ws.close()

        closer = asyncio.create_task(close_on_stop())
        try:
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    event = json.loads(msg.data)
                except ValueError:
                    log.warning("undecodable ARI event: %.200s", msg.data)
                    continue
                on_event(event)
        finally:
            closer.cancel()
