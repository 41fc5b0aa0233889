"""Clients that saturate the web listener: idle connections, and slow ones that send a
request's headers a byte at a time (tests/integration/test_web_saturation.py and the
``web`` fault of tests/integration/fault_run.py)."""

from __future__ import annotations

import selectors
import socket
import threading
import time

# the start of a request whose headers never end: a slow client's bytes, one per round
SLOW_REQUEST = b"POST /api/visit HTTP/1.1\r\nHost: www.example.com\r\nX-Slow: " + b"s" * 4096


class Saturator:
    """Keeps ``len(sources) * per_source`` connections open to ``port``; every ``slow_every``-th
    one (0: none) sends a byte of ``SLOW_REQUEST`` per round, the others stay idle. A
    connection the daemon closes (or refuses) is opened again in the next round."""

    def __init__(self, port: int, sources: list[str], per_source: int, slow_every: int = 0) -> None:
        self.port, self.sources, self.per_source = port, sources, per_source
        self.slow_every = slow_every
        self.stopping = threading.Event()
        self.opened = 0
        self.held = 0
        self.slow_bytes = 0  # bytes the slow clients got through
        self.thread = threading.Thread(target=self._run, name="saturator", daemon=True)
        self._sent: dict[socket.socket, int] = {}  # slow client -> bytes sent

    def _open(self, sel: selectors.DefaultSelector, source: str) -> None:
        s = socket.socket()
        s.bind((source, 0))
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", self.port))
        sel.register(s, selectors.EVENT_READ, source)
        self.opened += 1
        if self.slow_every and self.opened % self.slow_every == 0:
            self._sent[s] = 0

    def _drip(self) -> None:
        for s, sent in list(self._sent.items()):
            if sent >= len(SLOW_REQUEST):
                continue
            try:
                self._sent[s] = sent + s.send(SLOW_REQUEST[sent : sent + 1])
                self.slow_bytes += 1
            except OSError:  # not connected yet, or closed: the select says which
                pass

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        for source in self.sources:
            for _ in range(self.per_source):
                self._open(sel, source)
        try:
            while not self.stopping.is_set():
                closed = []
                for key, _ in sel.select(timeout=0.5):
                    try:
                        data = key.fileobj.recv(4096)  # type: ignore[union-attr]
                    except OSError:
                        data = b""
                    if not data:  # the daemon closed it (or refused it): open another
                        closed.append(key)
                for key in closed:
                    sel.unregister(key.fileobj)
                    self._sent.pop(key.fileobj, None)  # type: ignore[call-overload]
                    key.fileobj.close()  # type: ignore[union-attr]
                self.held = len(sel.get_map())
                time.sleep(0.5)  # an attacker in a hurry, not a busy loop on a shared CPU
                for key in closed:
                    self._open(sel, key.data)
                self._drip()
        finally:
            for key in list(sel.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]
            sel.close()

    def __enter__(self) -> Saturator:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(10)
