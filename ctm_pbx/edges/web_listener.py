"""The web listener: aiohttp's HTTP server with the limits a public port needs.

- A total and a per-client cap on open connections: beyond them a connection gets
  a 503 (total) or 429 (per client) and is closed at once, so that one client
  cannot take the file descriptors the call path (ARI, AMI, FastAGI) needs. A
  trusted proxy's connections carry many clients: only the total cap applies.
- A connection that is idle, or whose request headers have not all arrived, is
  closed ``idle_timeout`` seconds after it opened (our own deadline on the first
  request's headers: aiohttp before 3.14 set none) or after its last response
  (aiohttp's keep-alive timer, which arriving bytes do not push back). The body
  has its own deadline (edges/web.py).
- A malformed request gets a JSON 400 and at most one short log line per
  ``MALFORMED_LOG_EVERY_S``; the lines in between are counted, not written.
- Responses name no software versions (``Server: ctm-pbx``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ctm_pbx.core.client_address import IpNetwork, client_key, from_trusted_proxy

log = logging.getLogger(__name__)

SERVER_NAME = "ctm-pbx"


async def name_server(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` of both apps: responses say ``Server: ctm-pbx``, not
    aiohttp's "Python/… aiohttp/…" (no software versions for a scanner)."""
    response.headers["Server"] = SERVER_NAME


IDLE_TIMEOUT_S = 5.0  # keep-alive, and the deadline for a request's headers
LINGER_S = 0.0  # a body the handler left unread (or could not read): close at once
MALFORMED_LOG_EVERY_S = 10.0
MAX_CONNECTIONS = 1024
MAX_CONNECTIONS_PER_CLIENT = 32


def connection_budget(configured: int, fd_limit: int) -> int:
    """The total cap in force: at most half the process's file descriptors, so the
    other half stays for the call path, the database and the log."""
    return max(1, min(configured, fd_limit // 2))


@dataclass
class ConnectionCaps:
    """Open web connections, in total and per client (IPv4 address, IPv6 /64)."""

    total: int = MAX_CONNECTIONS
    per_client: int = MAX_CONNECTIONS_PER_CLIENT
    trusted: tuple[IpNetwork, ...] = ()
    open: int = 0
    refused: int = 0
    by_client: dict[str, int] = field(default_factory=dict)

    def _key(self, remote: str | None) -> str | None:
        return None if from_trusted_proxy(remote, self.trusted) else client_key(remote, None, ())

    def admit(self, remote: str | None) -> tuple[int, str | None]:
        """(0, the client's key) when the connection may open, else (the status that
        refuses it, None). The key is what ``release`` takes when it closes."""
        if self.open >= self.total:
            self.refused += 1
            return 503, None
        key = self._key(remote)
        if key is not None:
            held = self.by_client.get(key, 0)
            if held >= self.per_client:
                self.refused += 1
                return 429, None
            self.by_client[key] = held + 1
        self.open += 1
        return 0, key

    def release(self, key: str | None) -> None:
        self.open -= 1
        if key is not None:
            held = self.by_client.pop(key, 1) - 1
            if held > 0:
                self.by_client[key] = held


def _refusal(status: int, reason: str, error: str, message: str) -> bytes:
    body = json.dumps({"error": error, "message": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nServer: {SERVER_NAME}\r\n"
        f"Content-Type: application/json; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        "Retry-After: 1\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


REFUSALS = {
    429: _refusal(
        429, "Too Many Requests", "too_many_connections", "too many connections from this address"
    ),
    503: _refusal(503, "Service Unavailable", "server_busy", "too many connections; retry later"),
}


@dataclass
class MalformedLog:
    """One short line per ``every`` seconds about malformed requests, with the count."""

    every: float = MALFORMED_LOG_EVERY_S
    clock: object = time.monotonic
    _next: float = 0.0
    _unlogged: int = 0

    def note(self, remote: str | None, what: str) -> None:
        now = self.clock()  # type: ignore[operator]
        if now < self._next:
            self._unlogged += 1
            return
        more, self._unlogged, self._next = self._unlogged, 0, now + self.every
        log.warning(
            "malformed HTTP request from %s: %s (%d more not logged)",
            remote,
            ascii((what.strip().splitlines() or [""])[0][:80]),
            more,
        )


class _Connection(RequestHandler):
    """aiohttp's request handler behind the caps, with quiet JSON 4xx errors."""

    def __init__(
        self,
        manager,  # noqa: ANN001 - aiohttp's web.Server
        caps: ConnectionCaps,
        malformed: MalformedLog,
        headers_within: float,
        **kwargs,
    ) -> None:
        super().__init__(manager, keepalive_timeout=headers_within, **kwargs)
        self._ctm_caps = caps
        self._ctm_malformed = malformed
        self._ctm_key: str | None = None
        self._ctm_admitted = False
        self._ctm_headers_within = headers_within
        self._ctm_deadline: asyncio.TimerHandle | None = None  # until the first headers end
        self._ctm_tail = b""  # the last bytes seen, for a CRLFCRLF split across segments

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        remote = peer[0] if isinstance(peer, tuple) and peer else None
        refused, key = self._ctm_caps.admit(remote)
        if refused:
            transport.write(REFUSALS[refused])  # type: ignore[attr-defined]
            transport.close()
            return
        self._ctm_key, self._ctm_admitted = key, True
        loop = asyncio.get_running_loop()
        self._ctm_deadline = loop.call_later(self._ctm_headers_within, self._ctm_too_slow)
        super().connection_made(transport)

    def _ctm_too_slow(self) -> None:
        self._ctm_deadline = None
        self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._ctm_admitted:
            return
        self._ctm_admitted = False
        self._ctm_caps.release(self._ctm_key)
        if self._ctm_deadline is not None:
            self._ctm_deadline.cancel()
            self._ctm_deadline = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._ctm_admitted:
            return
        if self._ctm_deadline is not None:
            seen = self._ctm_tail + data
            if b"\r\n\r\n" in seen:
                self._ctm_deadline.cancel()
                self._ctm_deadline = None
            else:
                self._ctm_tail = seen[-3:]
        super().data_received(data)

    def eof_received(self) -> None:
        if self._ctm_admitted:
            super().eof_received()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:  # our failure, not the client's: aiohttp logs its traceback
            resp = super().handle_error(request, status, exc, message)
            resp.headers["Server"] = SERVER_NAME
            return resp
        self._ctm_malformed.note(request.remote, message or str(exc))
        if request.writer.output_size > 0:
            raise ConnectionError("a response was sent already")
        resp = web.json_response(
            {"error": "bad_request", "message": "malformed HTTP request"},
            status=status,
            headers={"Server": SERVER_NAME},
        )
        resp.force_close()
        return resp


class GuardedSite(web.BaseSite):
    """A TCP site of an ``AppRunner`` whose connections are ``_Connection``s."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        caps: ConnectionCaps,
        *,
        idle_timeout: float = IDLE_TIMEOUT_S,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host, self._port = host, port
        self.caps = caps
        self.malformed = MalformedLog()
        self._idle_timeout = idle_timeout

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        manager = self._runner.server
        assert manager is not None
        settings = {"loop": loop, "lingering_time": LINGER_S, "access_log": None}

        def connection() -> _Connection:
            return _Connection(manager, self.caps, self.malformed, self._idle_timeout, **settings)

        self._server = await loop.create_server(
            connection, self._host, self._port, backlog=self._backlog, reuse_address=True
        )
