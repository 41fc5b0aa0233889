"""AMI reconnection against real local TCP servers: nothing listening (refused), a
server that accepts and drops at once, and one that speaks enough AMI to log in.

While AMI is down the client backs off (the gaps between attempts grow to the cap)
and logs changes of state only, not one line per attempt as panoramisk does."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
from aiohttp.test_utils import unused_port

from ctm_pbx.adapters import ami_client
from ctm_pbx.adapters.ami_client import AmiClient
from ctm_pbx.core.model import AmiSettings

SECRET = "ami-secret-not-for-logs"


class FakeAmi:
    """A TCP server on 127.0.0.1: ``drop`` closes each connection at once; otherwise
    it sends the banner and accepts any login and action."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.drop = True
        self.accepted: list[float] = []  # loop times of the connections
        self.writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in self.writers:
            w.close()
        await self._server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.append(asyncio.get_running_loop().time())
        if self.drop:
            writer.close()
            return
        self.writers.append(writer)
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        buf = b""
        try:
            while chunk := await reader.read(4096):
                buf += chunk
                while b"\r\n\r\n" in buf:
                    block, buf = buf.split(b"\r\n\r\n", 1)
                    found = re.search(rb"ActionID: (\S+)", block, re.I)
                    action_id = found.group(1) if found else b""
                    writer.write(b"Response: Success\r\nActionID: " + action_id + b"\r\n\r\n")
        except ConnectionError:
            pass


def ami_lines(records: list[logging.LogRecord]) -> list[str]:
    return [
        r.getMessage()
        for r in records
        if r.name.startswith(("ctm_pbx.adapters.ami_client", "panoramisk"))
        and r.levelno >= logging.INFO
    ]


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ami_client, "RETRY_FIRST_S", 0.05)
    monkeypatch.setattr(ami_client, "RETRY_MAX_S", 0.4)


async def wait_for(predicate, timeout: float = 5.0) -> None:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.01)


async def test_refused_backs_off_and_logs_once(fast_backoff, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    port = unused_port()  # nothing listens
    client = AmiClient(AmiSettings(port=port, secret=SECRET), lambda event: None)
    client.start()
    try:
        await asyncio.sleep(2.0)
    finally:
        await client.close()
    # 0.05, 0.1, 0.2, 0.4, 0.4, ... (±20 %): about 7 attempts in 2 s
    assert 4 <= client.failed_attempts <= 12, client.failed_attempts
    lines = ami_lines(caplog.records)
    assert len(lines) == 1 and "not reachable" in lines[0], lines
    assert SECRET not in caplog.text


async def test_dropped_connections_back_off_then_login_and_loss_are_logged(
    fast_backoff,  # noqa: ANN001
    caplog,  # noqa: ANN001
) -> None:
    caplog.set_level(logging.DEBUG)
    server = FakeAmi(unused_port())
    await server.start()
    client = AmiClient(AmiSettings(port=server.port, secret=SECRET), lambda event: None)
    client.start()
    try:
        await wait_for(lambda: len(server.accepted) >= 6)
        gaps = [b - a for a, b in zip(server.accepted, server.accepted[1:], strict=False)]
        # each gap about twice the last until the cap (jitter ±20 %); the TCP connect
        # succeeding does not reset the backoff, only a login does
        assert gaps[1] > gaps[0] * 1.2 and gaps[2] > gaps[1] * 1.2, gaps
        assert max(gaps) < 0.4 * 1.2 + 0.2, gaps
        assert client.logins == 0 and not client.connected.is_set()
        lines = ami_lines(caplog.records)
        assert len(lines) == 1 and "not reachable (closed before login)" in lines[0], lines

        server.drop = False  # AMI answers again
        await wait_for(client.connected.is_set)
        assert client.logins == 1
        lines = ami_lines(caplog.records)
        assert len(lines) == 2 and "connected to 127.0.0.1" in lines[1] and "again" in lines[1]

        # AMI goes away: one line for the loss, one for the outage, none per attempt
        server.drop = True
        attempts = client.failed_attempts
        for w in server.writers:
            w.close()
        await wait_for(lambda: client.failed_attempts >= attempts + 4)
        lines = ami_lines(caplog.records)
        assert (
            lines[2:]
            == [
                "AMI connection lost; reconnecting",
                lines[3],
            ]
            and "not reachable" in lines[3]
        ), lines
        assert SECRET not in caplog.text
    finally:
        await client.close()
        await server.stop()
