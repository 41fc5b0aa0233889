"""A thin ARI client on aiohttp: REST requests and the event WebSocket.

REST requests go on the event WebSocket when Asterisk answers them there (20.14,
21.9, 22.4 and later; probed at each connection), else over HTTP. Listings
(channels, the application's subscriptions) always go over HTTP: Asterisk builds
each WebSocket frame it sends on its thread's stack, and a listing of a busy PBX
(hundreds of KB) overflows that stack: Asterisk 22.10 crashes
(``__ast_websocket_write``). Per-call requests answer a few hundred bytes.

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
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

log = logging.getLogger(__name__)

EventHandler = Callable[[dict], None]
ConnectHandler = Callable[[], Coroutine[Any, Any, None]]
WS_PROBE_S = 2.0  # how long to wait for Asterisk to answer a REST request on the socket
WS_PROBE_FAILURES_MAX = 3
REFUSED_MAX_S = 0.25  # nothing listens (Asterisk restarting): a refused connection is cheap
BOOTING_RETRY_S = 0.05  # 503: Asterisk answers but is still booting: again at once


class AriError(Exception):
    def __init__(
        self, method: str, path: str, status: int, body: str, *, retried: bool = False
    ) -> None:
        super().__init__(f"ARI {method} {path} -> {status} {body[:200]}")
        self.status = status
        self.retried = retried  # sent again over HTTP after the socket lost the first


class SocketLost(aiohttp.ClientConnectionError):
    """The event socket closed before Asterisk answered a request sent on it."""


@dataclass
class Backoff:
    """Exponential backoff with jitter between reconnection attempts."""

    initial: float = 0.2
    maximum: float = 10.0
    _next: float = 0.0

    def reset(self) -> None:
        self._next = 0.0

    def delay(self, cap: float | None = None) -> float:
        """The next delay; ``cap`` bounds it (and its growth) for cheap failures."""
        self._next = self.initial if self._next == 0 else min(self.maximum, self._next * 2)
        if cap is not None:
            self._next = min(self._next, cap)
        return self._next * random.uniform(0.8, 1.2)


def retry_delay(exc: BaseException, backoff: Backoff) -> float:
    """How long to wait after a failed connection.

    Connection refused: Asterisk is restarting (or stopped); trying every quarter
    second costs a refused connection, and ctm-pbx is back within that of ARI
    answering. A 503 is a booting Asterisk: again at once, not counted as a
    failure. Anything else (timeouts, a wrong password): the exponential backoff."""
    if isinstance(exc, aiohttp.WSServerHandshakeError) and exc.status == 503:
        return BOOTING_RETRY_S
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(
        exc.os_error, ConnectionRefusedError
    ):
        return backoff.delay(REFUSED_MAX_S)
    return backoff.delay()


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
        self.connects = 0  # event sockets opened (all but the first are reconnections)
        # each REST request's (transport, seconds), answered or not (the daemon's metrics)
        self.on_request: Callable[[str, float], None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ws_rest = False  # Asterisk answers REST requests on the event socket
        self._ws_rest_unsupported = False  # a probe went unanswered: do not ask again
        self._ws_probe_failures = 0  # failed probes in a row
        self._pending: dict[str, asyncio.Future] = {}
        self._next_id = 0

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

    async def request(self, method: str, path: str, *, listing: bool = False, **params: Any) -> Any:
        """One REST request; returns the decoded JSON (or None); raises AriError.

        ``listing``: the answer grows with the PBX's load; always over HTTP (see above).
        """
        observe = self.on_request
        if observe is None:
            return await self._request(method, path, listing, params)
        started = time.perf_counter()
        transport = "http" if listing or not self._ws_rest else "websocket"
        try:
            return await self._request(method, path, listing, params)
        finally:
            observe(transport, time.perf_counter() - started)

    async def _request(self, method: str, path: str, listing: bool, params: dict) -> Any:
        assert self._session is not None, "start() first"
        clean = {k: v for k, v in params.items() if v is not None}
        if not listing and self._ws_rest and self._ws is not None and not self._ws.closed:
            try:
                return await self._ws_request(method, path, clean)
            except SocketLost:
                # Asterisk may or may not have run it: send it again over HTTP (the
                # requests ctm-pbx makes are safe to repeat, or report a 409; see
                # continue_in_dialplan)
                log.warning("ARI %s %s lost with the socket: again over HTTP", method, path)
                return await self._http_request(method, path, clean, retried=True)
        return await self._http_request(method, path, clean)

    async def _http_request(
        self, method: str, path: str, params: dict, *, retried: bool = False
    ) -> Any:
        assert self._session is not None, "start() first"
        url = f"{self.base}{path}"
        if params:
            url += "?" + urlencode(params)
        self.requests_sent += 1
        async with self._session.request(method, url) as resp:
            body = await resp.text()
            if resp.status >= 300:
                raise AriError(method, path, resp.status, body, retried=retried)
            return json.loads(body) if body else None

    async def _ws_request(self, method: str, path: str, params: dict, timeout: float = 10) -> Any:
        """The same request as a ``RESTRequest`` message on the event WebSocket."""
        assert self._ws is not None
        self._next_id += 1
        rid = f"r{self._next_id}"
        uri = path.lstrip("/")
        if params:
            uri += "?" + urlencode(params)
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self.requests_sent += 1
        message = {"type": "RESTRequest", "request_id": rid, "method": method, "uri": uri}
        try:
            try:
                await self._ws.send_str(json.dumps(message))
            except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
                raise SocketLost(f"ARI socket closed: {exc}") from exc
            resp = await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(rid, None)
        status = int(resp.get("status_code") or 0)
        body = resp.get("message_body")
        text = body if isinstance(body, str) else json.dumps(body)
        if not 200 <= status < 300:
            raise AriError(method, path, status, text)
        if isinstance(body, str):
            return json.loads(body) if body else None
        return body

    @property
    def rest_transport(self) -> str:
        return "websocket" if self._ws_rest else "http"

    async def probe_ws_rest(self, timeout: float = WS_PROBE_S) -> bool:
        """Send REST requests on the event socket from now on, if this Asterisk answers them.

        Asterisk 20.14, 21.9 and 22.4 added REST over the event WebSocket: no HTTP
        request to parse and authenticate per call, on either side. An older one
        ignores the probe, or drops the socket: after a few connections like that it
        is not asked again while this process lives.
        """
        self._ws_rest = False
        if self._ws is None or self._ws_rest_unsupported:
            return False
        try:
            await self._ws_request("GET", "/asterisk/ping", {}, timeout)
        except (TimeoutError, AriError, aiohttp.ClientError, ValueError) as exc:
            # calls go over HTTP meanwhile, so a failed probe costs them nothing; an
            # Asterisk that never answers is not asked again after a few connections
            self._ws_probe_failures += 1
            self._ws_rest_unsupported = self._ws_probe_failures >= WS_PROBE_FAILURES_MAX
            log.info("ARI REST over WebSocket not available (%r): using HTTP", exc)
            return False
        log.info("ARI REST requests go over the event WebSocket")
        self._ws_probe_failures = 0
        self._ws_rest = True
        return True

    async def continue_in_dialplan(
        self, channel_id: str, context: str, extension: str, priority: int = 1
    ) -> None:
        try:
            await self.request(
                "POST",
                f"/channels/{channel_id}/continue",
                context=context,
                extension=extension,
                priority=priority,
            )
        except AriError as exc:
            if exc.status == 409 and exc.retried:
                # "not in a Stasis application": the lost first request did move it
                log.info("channel %s had already continued to %s", channel_id, context)
                return
            raise

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
        return await self.request("GET", "/channels", listing=True) or []

    async def application(self) -> dict:
        return await self.request("GET", f"/applications/{self.app}", listing=True) or {}

    async def set_event_filter(self, allowed: list[str]) -> None:
        """Ask Asterisk to send only these event types (fewer events per call).

        Asterisk filters its answers to REST requests on the socket too:
        ``RESTResponse`` is always let through."""
        body = {"allowed": [{"type": t} for t in [*allowed, "RESTResponse"]]}
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
        failures = 0  # in a row: only the first of an outage is worth a warning
        while not stop.is_set():
            failure: BaseException | None = None
            try:
                async with self._session.ws_connect(
                    url, heartbeat=15, timeout=aiohttp.ClientWSTimeout(ws_close=5)
                ) as ws:
                    log.info("connected to ARI as app %s", self.app)
                    self.connects += 1
                    backoff.reset()
                    failures = 0
                    self._ws = ws
                    self.connected.set()
                    # the pump runs during on_connect: the probe's answer comes as an event
                    pump = asyncio.create_task(self._pump(ws, on_event, stop))
                    connect = asyncio.create_task(on_connect())
                    try:
                        await asyncio.wait({pump, connect}, return_when=asyncio.FIRST_COMPLETED)
                        if connect.done():
                            await connect  # its error, if any
                        await pump
                    finally:
                        pump.cancel()
                        connect.cancel()  # the socket ended first: reconnecting starts over
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                failure = exc
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "ARI connection failed: %s", exc)
            finally:
                self._ws = None
                self._ws_rest = False
                self._fail_pending()
                if self.connected.is_set():
                    log.warning("disconnected from ARI; calls take the dialplan fail-safe")
                self.connected.clear()
            if stop.is_set():
                break
            delay = retry_delay(failure, backoff) if failure is not None else backoff.delay()
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
                if event.get("type") == "RESTResponse":
                    fut = self._pending.get(event.get("request_id"))
                    if fut is not None and not fut.done():
                        fut.set_result(event)
                    continue
                on_event(event)
        finally:
            closer.cancel()
            self._ws_rest = False  # from now on over HTTP, until a new socket is probed
            self._fail_pending()

    def _fail_pending(self) -> None:
        """Requests still waiting for an answer on a socket that is gone."""
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(SocketLost("ARI socket closed"))
