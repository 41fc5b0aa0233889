"""What the browser tests and ``bench/swap_page.py`` share: the generated 5,000-element
page, and aiohttp servers on 127.0.0.1 in a background thread (Playwright's sync API
keeps the test's own thread)."""

from __future__ import annotations

import abc
import asyncio
import threading

from aiohttp import web


class ThreadedServers(abc.ABC):
    """aiohttp apps on ephemeral loopback ports, served by one event loop in a thread.

    Subclasses build their apps in ``_start`` with ``_listen``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runners: list[web.AppRunner] = []
        self.api = self.site = ""

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @abc.abstractmethod
    async def _start(self) -> None:
        """Build the apps and ``_listen`` each (on the servers' loop)."""

    async def _listen(self, app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.runners.append(runner)
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def _stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


def big_page(api: str, rows: int = 1000) -> str:
    """A page of ``rows`` rows of 5 elements (5,000 elements, ~8,000 text nodes), with a
    target number every 20 rows (half of them in tel: links)."""
    out = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Big</title>",
        "<script>window.ctmEvents=[];document.addEventListener('ctm:swapped',"
        "function(e){ctmEvents.push(Object.assign({t:performance.now()},e.detail))})</script>",
        f"<script async src='{api}/swap.js'></script></head><body>",
    ]
    for i in range(rows):
        phone = ""
        if i % 20 == 0:
            phone = " <a href='tel:+13125550100'>(312) 555-0100</a>" if i % 40 else " 312-555-0100"
        out.append(
            f"<div class='row'><span>Item {i}</span> <b>SKU {i * 7919 % 100000:05d}</b>"
            f" <i>in stock: {i % 13}</i> <em>price ${i % 97}.99</em>{phone}</div>"
        )
    out.append("</body></html>")
    return "\n".join(out)
