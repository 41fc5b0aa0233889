"""The FastAGI server: Asterisk's side of the protocol played by plain sockets."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import uvloop

from ctm_pbx.adapters import fastagi
from ctm_pbx.adapters.fastagi import AgiHangup, AgiReply, AgiRequest, parse_reply, serve

ENV = (
    "agi_network: yes\nagi_network_script: {script}\nagi_request: agi://127.0.0.1/{script}\n"
    "agi_channel: PJSIP/carrier-00000001\nagi_uniqueid: 1764390000.1\n"
    "agi_callerid: 3125550100\nagi_arg_1: 13125550160\n\n"
)


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("200 result=0", AgiReply(200, "0", None, "200 result=0")),
        ("200 result=-1", AgiReply(200, "-1", None, "200 result=-1")),
        ("200 result=1 (linked-1)", AgiReply(200, "1", "linked-1", "200 result=1 (linked-1)")),
        ("200 result=1 (a b (c))", AgiReply(200, "1", "a b (c)", "200 result=1 (a b (c))")),
        ("200 result= (timeout)", AgiReply(200, "", "timeout", "200 result= (timeout)")),
        ("510 Invalid or unknown command", AgiReply(510, line="510 Invalid or unknown command")),
        ("garbage", AgiReply(0, "", None, "garbage")),
    ],
)
def test_parse_reply(line: str, reply: AgiReply) -> None:
    assert parse_reply(line) == reply


class Server:
    """The FastAGI server on its own event loop in a thread, as the daemon runs it; the
    test plays Asterisk with blocking sockets, so a server whose loop is stuck fails
    the test (by its socket timeouts) instead of hanging it."""

    def __init__(self, routes: dict, new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
        self.loop = new_loop()
        self.seen: list[dict[str, str]] = []
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(serve(routes, "127.0.0.1", 0))
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(5)

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_line(sock: socket.socket) -> bytes:
    out = b""
    while not out.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            return out
        out += chunk
    return out


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


@pytest.fixture(params=[asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"])
def new_loop(request) -> Callable[[], asyncio.AbstractEventLoop]:
    """Both loops the daemon may run on: uvloop's transports are not asyncio's classes."""
    return request.param


@pytest.fixture
def server(new_loop) -> Iterator[Server]:
    async def inbound(request: AgiRequest) -> None:
        srv.seen.append(request.headers)
        reply = await request.send_command("GET FULL VARIABLE ${CHANNEL(linkedid)}")
        srv.seen.append({"reply": reply.line, "value": reply.value or ""})

    srv = Server({"inbound": inbound}, new_loop)
    yield srv
    srv.stop()


def run_session(port: int, answers: list[bytes], script: str = "inbound") -> list[bytes]:
    """Asterisk's side: the environment, one line per write as Asterisk sends it, then
    ``answers`` to the commands; the command lines received."""
    with connect(port) as sock:
        for line in ENV.format(script=script).splitlines(keepends=True):
            sock.sendall(line.encode())
        commands = []
        for answer in answers:
            commands.append(read_line(sock))
            sock.sendall(answer)
        assert closed_by_server(sock), "the script ends by closing"
    return commands


def test_a_session_gets_its_environment_and_its_answer(server: Server) -> None:
    commands = run_session(server.port, [b"200 result=1 (linked-1)\n"])
    assert commands == [b"GET FULL VARIABLE ${CHANNEL(linkedid)}\n"]
    headers, reply = server.seen
    assert headers["agi_uniqueid"] == "1764390000.1" and headers["agi_arg_1"] == "13125550160"
    assert reply == {"reply": "200 result=1 (linked-1)", "value": "linked-1"}


def test_a_client_closing_mid_environment_leaves_the_server_serving(server: Server) -> None:
    # panoramisk's FastAGI handler spun for ever here (read() at EOF), holding its loop
    with connect(server.port) as sock:
        sock.sendall(b"agi_network: yes\nagi_network_script: inbound\n")
    assert run_session(server.port, [b"200 result=1 (x)\n"])
    assert server.seen[-1]["value"] == "x"


def test_an_environment_that_never_ends_is_closed(server: Server, monkeypatch) -> None:
    monkeypatch.setattr(fastagi, "ENV_TIMEOUT_S", 0.2)
    with connect(server.port) as sock:
        sock.sendall(b"agi_network: yes\n")
        t0 = time.monotonic()
        assert closed_by_server(sock)
        assert time.monotonic() - t0 < 1.5
    with connect(server.port) as sock:  # and one that is too long
        sock.sendall(b"x" * (fastagi.MAX_ENV_BYTES + 10))
        assert closed_by_server(sock)
    assert server.seen == []


def test_an_unknown_script_is_closed_at_once(server: Server) -> None:
    assert run_session(server.port, [], script="nope") == []
    assert server.seen == []


def test_trying_lines_and_multi_line_usage_answers(server: Server) -> None:
    run_session(server.port, [b"100 result=0 Trying...\n200 result=1 (late)\n"])
    assert server.seen[-1]["value"] == "late"
    usage = b"520-Invalid command syntax.  Proper usage follows:\nUsage: x\n520 End of usage.\n"
    run_session(server.port, [usage])
    reply = server.seen[-1]["reply"]
    assert reply.startswith("520-Invalid") and reply.endswith("520 End of usage.")


def test_hangup_fails_the_waiting_command_and_a_failing_script_still_closes(new_loop) -> None:
    raised: list[BaseException] = []

    async def inbound(request: AgiRequest) -> None:
        try:
            await request.send_command("EXEC Wait 5")
        except AgiHangup as exc:
            raised.append(exc)
        raise RuntimeError("the script's own error")

    srv = Server({"inbound": inbound}, new_loop)
    try:
        assert run_session(srv.port, [b"HANGUP\n"]) == [b"EXEC Wait 5\n"]
        assert len(raised) == 1
    finally:
        srv.stop()


async def test_a_command_must_be_one_line() -> None:
    request = AgiRequest(fastagi.FastAgiProtocol({}), {})
    with pytest.raises(ValueError):
        await request.send_command("EXEC MSet A=1\nEXEC Hangup")


def test_finish_sends_a_last_command_and_reads_its_answer_later(new_loop) -> None:
    replies: list = []
    after: list[BaseException] = []

    async def inbound(request: AgiRequest) -> None:
        reply = request.finish("EXEC MSet CTM_STATUS=ok")
        reply.add_done_callback(
            lambda f: replies.append(f.exception() or f.result())  # noqa: B023
        )
        try:
            await request.send_command("EXEC Wait 1")
        except fastagi.AgiClosed as exc:
            after.append(exc)

    srv = Server({"inbound": inbound}, new_loop)
    try:
        for answer in (b"200 result=0\n", b""):  # Asterisk answers; or it closes
            with connect(srv.port) as sock:
                for line in ENV.format(script="inbound").splitlines(keepends=True):
                    sock.sendall(line.encode())
                assert read_line(sock) == b"EXEC MSet CTM_STATUS=ok\n"
                assert sock.recv(100) == b"", "the end follows: no wait for the answer"
                sock.sendall(answer)
            deadline = time.monotonic() + 2
            while len(replies) < (1 if answer else 2) and time.monotonic() < deadline:
                time.sleep(0.01)
        assert replies[0] == AgiReply(200, "0", None, "200 result=0")
        assert isinstance(replies[1], fastagi.AgiClosed)
        assert len(after) == 2, "nothing can be sent after the last command"
    finally:
        srv.stop()
