"""A FastAGI server: Asterisk's ``AGI(agi://host:port/script,args)`` over TCP.

Asterisk connects, sends its ``agi_*`` environment (``name: value`` lines ended
by an empty line), then waits for commands, one line each, and answers each
with a result line (``200 result=0``). The script ends when the server closes
the connection. See https://docs.asterisk.org/Configuration/Interfaces/Asterisk-Gateway-Interface-AGI/

Our own, on ``asyncio.Protocol`` rather than panoramisk's ``Application``:
panoramisk's handler loops for ever, holding the event loop, when a client
closes before its environment is complete (``read()`` at EOF returns ``b""``
without ever waiting), which stops every call and the daemon with it. Here a
connection that sends no complete environment within ``ENV_TIMEOUT_S`` or more
than ``MAX_ENV_BYTES`` is closed, and one that closes early is forgotten. It
is also leaner: one callback per segment Asterisk writes, no stream objects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

log = logging.getLogger(__name__)

ENV_TIMEOUT_S = 5.0  # Asterisk sends its environment at once: a slow one is not Asterisk
MAX_ENV_BYTES = 64 * 1024  # a channel's environment is about 1 KB
MAX_REPLY_BYTES = 64 * 1024


class AgiHangup(Exception):
    """The channel hung up: Asterisk answered a command with ``HANGUP``."""


class AgiClosed(ConnectionError):
    """The connection closed before a command was answered."""


@dataclass(frozen=True)
class AgiReply:
    """One command's answer: ``200 result=1 (value)`` → code 200, result "1", value "value"."""

    code: int
    result: str = ""
    value: str | None = None
    line: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 200


def parse_reply(line: str) -> AgiReply:
    """``200 result=-1``, ``200 result=1 (linked-1)``, ``510 Invalid or unknown command``."""
    code_text, _, rest = line.partition(" ")
    try:
        code = int(code_text[:3])
    except ValueError:
        return AgiReply(0, line=line)
    result, value = "", None
    if rest.startswith("result="):
        result, _, tail = rest[len("result=") :].partition(" ")
        if tail.startswith("(") and tail.endswith(")"):
            value = tail[1:-1]
        elif tail.startswith("("):  # a value with spaces and more after it
            value = tail[1 : tail.rfind(")")] if ")" in tail else tail[1:]
    return AgiReply(code, result, value, line)


class AgiRequest:
    """One AGI session: the channel's environment, and commands to run on it."""

    def __init__(
        self, protocol: FastAgiProtocol, headers: dict[str, str], started: float = 0.0
    ) -> None:
        self.headers = headers
        self.started = started  # loop time Asterisk connected at
        self._protocol = protocol

    @property
    def script(self) -> str:
        """``inbound`` of ``agi://host:port/inbound``."""
        return self.headers.get("agi_network_script", "")

    async def send_command(self, command: str) -> AgiReply:
        """Run one AGI command (``EXEC MSet ...``, ``GET FULL VARIABLE ...``); its answer."""
        if "\n" in command or "\r" in command:
            raise ValueError("an AGI command is one line")
        return await self._protocol.command(command)

    def finish(self, command: str) -> asyncio.Future[AgiReply]:
        """Send a last command and end the script (our side of the connection closes).

        Asterisk runs the command, answers it, finds the end and goes on with the
        dialplan: its channel thread sleeps and wakes once, not twice (a context switch
        costs more than the command itself). Nobody needs to wait: the answer (or
        ``AgiHangup``/``AgiClosed``) comes in the returned future.
        """
        if "\n" in command or "\r" in command:
            raise ValueError("an AGI command is one line")
        return self._protocol.finish(command)


Handler = Callable[[AgiRequest], Awaitable[None]]


class FastAgiProtocol(asyncio.Protocol):
    """One connection from Asterisk; ``routes`` maps a script name to its handler."""

    def __init__(self, routes: dict[str, Handler]) -> None:
        self.routes = routes
        self.transport: asyncio.Transport | None = None
        self._buffer = b""
        self._env_done = False
        self._timer: asyncio.TimerHandle | None = None
        self._waiting: asyncio.Future[AgiReply] | None = None
        self._usage: list[str] = []  # a multi-line 520 answer being read
        self._task: asyncio.Task | None = None
        self._finished = False  # the last command is sent: Asterisk ends the session
        self._started = 0.0

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)
        loop = asyncio.get_running_loop()
        self._started = loop.time()
        self._timer = loop.call_later(ENV_TIMEOUT_S, self._env_late)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._env_done:
            self._read_env()
        else:
            self._read_replies()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._fail(AgiClosed("Asterisk closed the AGI connection"))
        self.transport = None

    # -- the environment -------------------------------------------------------------

    def _read_env(self) -> None:
        head, sep, rest = self._buffer.partition(b"\n\n")
        if not sep:
            head, sep, rest = self._buffer.partition(b"\r\n\r\n")
        if not sep:
            if len(self._buffer) > MAX_ENV_BYTES:
                log.warning("FastAGI: environment over %d bytes; closed", MAX_ENV_BYTES)
                self._close()
            return
        self._env_done = True
        self._buffer = rest
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        headers = {}
        for line in head.decode("utf-8", "replace").split("\n"):
            name, colon, value = line.rstrip("\r").partition(": ")
            if colon:
                headers[name] = value
        request = AgiRequest(self, headers, self._started)
        handler = self.routes.get(request.script)
        if handler is None:
            log.error("FastAGI: no script %r; closed", request.script)
            self._close()
            return
        self._task = asyncio.ensure_future(self._serve(handler, request))
        if self._buffer:  # an answer already (HANGUP): read it
            self._read_replies()

    def _env_late(self) -> None:
        self._timer = None
        log.warning("FastAGI: no complete environment within %.0f s; closed", ENV_TIMEOUT_S)
        self._close()

    async def _serve(self, handler: Handler, request: AgiRequest) -> None:
        try:
            await handler(request)
        except Exception:
            log.exception("FastAGI script %s failed", request.script)
        finally:
            if not self._finished:
                self._close()  # ends the AGI() in the dialplan

    # -- commands ----------------------------------------------------------------------

    async def command(self, command: str) -> AgiReply:
        if self.transport is None or self.transport.is_closing() or self._finished:
            raise AgiClosed("the AGI connection is closed")
        if self._waiting is not None:
            raise RuntimeError("one AGI command at a time")
        self._waiting = asyncio.get_running_loop().create_future()
        self.transport.write(command.encode() + b"\n")
        try:
            return await self._waiting
        finally:
            self._waiting = None

    def finish(self, command: str) -> asyncio.Future[AgiReply]:
        if self.transport is None or self.transport.is_closing() or self._finished:
            raise AgiClosed("the AGI connection is closed")
        if self._waiting is not None:
            raise RuntimeError("one AGI command at a time")
        loop = asyncio.get_running_loop()
        self._finished = True
        self._waiting = reply = loop.create_future()
        self.transport.write(command.encode() + b"\n")
        if self.transport.can_write_eof():
            self.transport.write_eof()  # after the command: TCP delivers it before the end
            self._timer = loop.call_later(ENV_TIMEOUT_S, self._close)  # Asterisk closes
        else:
            self._close()
        return reply

    def _read_replies(self) -> None:
        while b"\n" in self._buffer:
            raw, _, self._buffer = self._buffer.partition(b"\n")
            line = raw.decode("utf-8", "replace").rstrip("\r")
            if self._usage:  # 520-Invalid command syntax. ... 520 End of proper usage.
                if len(self._usage) < 200:
                    self._usage.append(line)
                if line.startswith("520 "):
                    self._answer(AgiReply(520, line="\n".join(self._usage)))
                continue
            if line.startswith("520-"):
                self._usage.append(line)
            elif line.startswith("100"):  # 100 result=0 Trying...: the answer follows
                continue
            elif line == "HANGUP":
                self._fail(AgiHangup("the channel hung up"))
            else:
                self._answer(parse_reply(line))
        if len(self._buffer) > MAX_REPLY_BYTES:
            log.warning("FastAGI: answer line over %d bytes; closed", MAX_REPLY_BYTES)
            self._close()

    def _answer(self, reply: AgiReply) -> None:
        self._usage = []
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_result(reply)
            if self._finished:
                self._waiting = None
        else:
            log.debug("FastAGI: unasked answer %r", reply.line)

    def _fail(self, exc: Exception) -> None:
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_exception(exc)

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


async def serve(routes: dict[str, Handler], host: str, port: int) -> asyncio.Server:
    """Listen for FastAGI connections on ``host:port``."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: FastAgiProtocol(routes), host, port)
