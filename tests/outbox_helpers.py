"""Builders for the outbox tests: calls written the way the call handlers write them."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import sqlite_utils
from aiohttp import web

from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.core.call.actions import FinishCall, Outcome, StartCall
from ctm_pbx.core.clock import iso

DID = "+13125550142"


def start_call(at: datetime | None = None, source: str | None = "billboard") -> StartCall:
    at = at or datetime.now(UTC)
    return StartCall(
        started_at=iso(at),
        tracking_number=DID,
        caller_number="+13125550100",
        caller_name="Caller",
        source=source,
        pool=None,
        route="one",
    )


def finish(at: datetime | None = None, talk: float = 60.0, outcome: str = "answered") -> FinishCall:
    at = at or datetime.now(UTC)
    return FinishCall(
        ended_at=iso(at),
        answered_at=iso(at - timedelta(seconds=talk)) if talk else None,
        outcome=Outcome(outcome),
        hangup_cause=16,
        ring_seconds=2.0,
        talk_seconds=talk,
        answered_by="desk-1" if talk else None,
        answered_number="+13125550101" if talk else None,
        failsafe=False,
        path=(),
    )


def whole_call(db: sqlite_utils.Database, channel: str, talk: float = 60.0) -> int:
    """A call started and finished in one transaction (as the call spool writes one)."""
    now = datetime.now(UTC)
    call_id = call_store.insert_call(
        db, start_call(now - timedelta(seconds=talk + 3)), channel_id=channel, linkedid=None
    )
    call_store.finish_call(db, call_id, finish(now, talk))
    return call_id


def outbox_rows(db: sqlite_utils.Database) -> list[dict]:
    cur = db.execute(
        "SELECT id, event_id, destination, event_type, call_id, state, attempts FROM outbox"
        " ORDER BY id"
    )
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


class ThreadReceiver:
    """An aiohttp receiver on its own loop in a thread; answers ``status``."""

    def __init__(self, status: int = 200, path: str = "/hook") -> None:
        self.status = status
        self.path = path
        self.got: list[tuple[dict, bytes]] = []
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        self.got.append(
            (dict(request.headers) | {"query": dict(request.query)}, await request.read())
        )
        return web.Response(status=self.status)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())

    def __enter__(self) -> ThreadReceiver:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
