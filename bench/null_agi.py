"""A FastAGI server that does no work: the floor under AGI mode (bench only).

It reads Asterisk's environment and answers every request with one fixed line:
the ``EXEC MSet`` that ctm-pbx sends for the bench's tracking number (the same
variables, so Asterisk does the same work; ``ari_routing.py`` writes it to
ANSWER_FILE), then ends the session as ctm-pbx does: no call row, no
attribution, no AMI. What AGI mode costs above plain
``Dial()`` with this server is Asterisk's own cost of an AGI round trip and the
AGI dialplan; what ctm-pbx adds above this server is ctm-pbx's.

    python bench/null_agi.py PORT ANSWER_FILE   (127.0.0.1 only; stop it with SIGTERM)
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ctm_pbx.edges.daemon import new_event_loop  # noqa: E402  (the daemon's own loop)


class NullAgi(asyncio.Protocol):
    answer = b""

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.buffer = b""
        self.answered = False

    def data_received(self, data: bytes) -> None:
        if self.answered:
            return  # Asterisk's reply to the answer
        self.buffer += data
        if b"\n\n" in self.buffer:
            self.answered = True
            self.transport.write(self.answer)
            self.transport.write_eof()

    def eof_received(self) -> None:
        self.transport.close()


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(NullAgi, "127.0.0.1", port)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        NullAgi.answer = Path(sys.argv[2]).read_bytes()
        runner.run(main(int(sys.argv[1])))
