"""The delivery worker against real HTTP receivers on loopback (aiohttp) that answer
200, fail then recover, stall, say 410, drop the connection, and go away and come back.

Signatures are checked with the README's own verification snippet.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from ctm_pbx.adapters.outbox_delivery import OutboxDelivery
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store import outbox
from ctm_pbx.adapters.store.schema import migrate
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.core.clock import iso
from ctm_pbx.core.model import Config, OutboxSettings
from tests.helpers import config
from tests.outbox_helpers import whole_call

README = Path(__file__).resolve().parent.parent / "README.md"
SECRET = "receiver-secret-0123456789"


def readme_verify() -> Callable[[str, str, bytes], bool]:
    """The README's verification snippet, run as it is written."""
    text = README.read_text(encoding="utf-8")
    m = re.search(r"<!-- webhook-verify -->\n```python\n(.*?)```", text, re.S)
    assert m, "the README shows how to verify a signature"
    scope: dict = {}
    exec(m.group(1), scope)  # noqa: S102 - the documentation's code, tested as code
    return scope["verify"]


VERIFY = readme_verify()


@dataclass
class Receiver:
    """A webhook receiver. ``plan``: what to do with the n-th request (0-based) —
    "ok", "500", "410", "stall", "close" (drop the connection); past the plan, "ok"."""

    plan: list[str] = field(default_factory=list)
    default: str = "ok"
    got: list[dict] = field(default_factory=list)  # every request, in arrival order

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        n = len(self.got)
        what = self.plan[n] if n < len(self.plan) else self.default
        self.got.append(
            {
                "event_id": request.headers.get("X-CTM-Event-Id"),
                "type": request.headers.get("X-CTM-Event"),
                "attempt": request.headers.get("X-CTM-Attempt"),
                "signed": VERIFY(SECRET, request.headers.get("X-CTM-Signature", ""), body),
                "custom": request.headers.get("X-Custom"),
                "body": body,
                "answer": what,
                "at": time.monotonic(),
            }
        )
        if what == "500":
            return web.Response(status=500)
        if what == "410":
            return web.Response(status=410)
        if what == "302":
            raise web.HTTPFound("/elsewhere")
        if what == "stall":
            await asyncio.sleep(30)
        if what == "close":
            assert request.transport is not None
            request.transport.close()
        return web.Response(status=204)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        app.router.add_post("/elsewhere", self.handle)
        return app

    def delivered(self) -> list[str]:
        """Event ids answered 2xx, in order."""
        return [g["event_id"] for g in self.got if g["answer"] == "ok"]


FAST = OutboxSettings(
    max_attempts=4, max_age_hours=1, backoff_first_seconds=0.05, backoff_max_seconds=0.2
)


def hooks_config(
    urls: dict[str, str], events: str = "[call.started, call.completed]", timeout: int = 1
) -> Config:
    text = "webhooks:\n" + "".join(
        f"  {name}:\n    url: {url}\n    secret: {SECRET}\n    events: {events}\n"
        f"    headers: {{X-Custom: hello}}\n    timeout_seconds: {timeout}\n"
        for name, url in urls.items()
    )
    return dataclasses.replace(config(text), outbox=FAST)


@dataclass
class Rig:
    writer: StoreWriter
    delivery: OutboxDelivery
    db_path: str

    async def calls(self, n: int, talk: float = 5.0) -> list[int]:
        ids = []
        for i in range(n):
            ids.append(await self.writer.run(whole_call, f"ch-{time.monotonic_ns()}-{i}", talk))
        return ids

    def rows(self, destination: str) -> list[dict]:
        def read(db) -> list[dict]:
            cur = db.execute(
                "SELECT event_id, event_type, state, attempts, last_status, last_error,"
                " payload_json FROM outbox WHERE destination = ? ORDER BY id",
                [destination],
            )
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

        return self.writer.run_sync(read)


@pytest.fixture
async def make_rig(tmp_path: Path) -> AsyncIterator[Callable]:
    made: list[Rig] = []

    async def make(cfg: Config) -> Rig:
        db_path = str(tmp_path / "ctm.db")
        writer = StoreWriter(db_path)
        writer.run_sync(migrate)
        cfg = dataclasses.replace(cfg, database=dataclasses.replace(cfg.database, path=db_path))
        delivery = OutboxDelivery(cfg, writer)
        await delivery.start()
        rig = Rig(writer, delivery, db_path)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        await rig.delivery.close()
        rig.writer.close()


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.01)


async def test_events_arrive_signed_in_order_once_each(aiohttp_server, make_rig) -> None:
    rx = Receiver()
    server = await aiohttp_server(rx.app())
    rig = await make_rig(hooks_config({"crm": f"http://127.0.0.1:{server.port}/hook"}))
    ids = await rig.calls(5)
    await until(lambda: len(rx.got) == 10)
    want = [r["event_id"] for r in rig.rows("crm")]
    assert rx.delivered() == want, "in the order they were written, each once"
    assert [g["type"] for g in rx.got] == ["call.started", "call.completed"] * 5
    assert all(g["signed"] for g in rx.got) and {g["custom"] for g in rx.got} == {"hello"}
    body = json.loads(rx.got[1]["body"])
    assert (body["version"], body["type"], body["id"]) == (1, "call.completed", want[1])
    # the call as `calls show --json` gives it
    shown = json.loads(json.dumps(rig.writer.run_sync(call_store.get_call, ids[0]), default=str))
    assert body["call"]["id"] == ids[0] and body["call"].keys() == shown.keys()
    await until(lambda: {r["state"] for r in rig.rows("crm")} == {"delivered"})


async def test_a_failing_receiver_gets_the_same_bytes_again_until_it_takes_them(
    aiohttp_server, make_rig
) -> None:
    rx = Receiver(plan=["500", "500", "ok"])
    server = await aiohttp_server(rx.app())
    rig = await make_rig(hooks_config({"crm": f"http://127.0.0.1:{server.port}/hook"}))
    await rig.calls(2)
    await until(lambda: len(rx.delivered()) == 4)
    first = rx.got[0]["event_id"]
    assert [g["event_id"] for g in rx.got[:3]] == [first] * 3, "the head of the line waits"
    assert [g["attempt"] for g in rx.got[:3]] == ["1", "2", "3"]
    assert len({g["body"] for g in rx.got[:3]}) == 1, "retries send the same body"
    assert all(g["signed"] for g in rx.got)
    gaps = [b["at"] - a["at"] for a, b in zip(rx.got[:2], rx.got[1:3], strict=True)]
    assert gaps[0] >= 0.025 and gaps[1] >= 0.05, "backoff doubles (with jitter, at least half)"
    assert rx.delivered() == [r["event_id"] for r in rig.rows("crm")]


async def test_a_stalling_receiver_times_out_and_its_events_end_dead(
    aiohttp_server, make_rig
) -> None:
    rx = Receiver(default="stall")
    server = await aiohttp_server(rx.app())
    rig = await make_rig(
        hooks_config({"slow": f"http://127.0.0.1:{server.port}/hook"}, events="[call.completed]")
    )
    await rig.calls(1)
    await until(lambda: [r["state"] for r in rig.rows("slow")] == ["dead"], timeout=15)
    (row,) = rig.rows("slow")
    assert row["attempts"] == FAST.max_attempts and "no answer within 1 s" in row["last_error"]
    assert len(rx.got) == FAST.max_attempts


async def test_410_disables_the_destination_and_retry_enables_it(aiohttp_server, make_rig) -> None:
    rx = Receiver(plan=["410"])
    server = await aiohttp_server(rx.app())
    rig = await make_rig(hooks_config({"crm": f"http://127.0.0.1:{server.port}/hook"}))
    await rig.calls(2)
    await until(lambda: "crm" in rig.writer.run_sync(outbox.summary))
    await until(lambda: rig.writer.run_sync(outbox.summary)["crm"].get("disabled") is not None)
    await asyncio.sleep(0.3)
    assert len(rx.got) == 1, "nothing more is sent to a receiver that said Gone"
    assert rig.delivery.health()["crm"]["disabled"]
    await rig.writer.run(outbox.retry, "crm", iso(datetime.now(UTC)))
    await until(lambda: len(rx.delivered()) == 4, timeout=5)
    assert rx.delivered() == [r["event_id"] for r in rig.rows("crm")], "in order, after all"


async def test_a_dropped_connection_and_a_redirect_are_tried_again(
    aiohttp_server, make_rig
) -> None:
    rx = Receiver(plan=["close", "302", "ok"])
    server = await aiohttp_server(rx.app())
    rig = await make_rig(
        hooks_config({"crm": f"http://127.0.0.1:{server.port}/hook"}, events="[call.completed]")
    )
    await rig.calls(1)
    await until(lambda: len(rx.delivered()) == 1)
    assert [g["answer"] for g in rx.got] == ["close", "302", "ok"], "the redirect is not followed"
    (row,) = rig.rows("crm")
    assert (row["state"], row["attempts"], row["last_status"]) == ("delivered", 3, 204)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def serve_at(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def test_a_receiver_stopped_and_restarted_gets_everything_in_order(
    aiohttp_server, make_rig
) -> None:
    """Two destinations: one healthy all along, one that goes away mid-test and comes
    back; neither holds up the other, and the one that was away catches up in order."""
    steady, flaky = Receiver(), Receiver()
    steady_server = await aiohttp_server(steady.app())
    port = free_port()
    runner = await serve_at(flaky.app(), port)
    rig = await make_rig(
        hooks_config(
            {
                "steady": f"http://127.0.0.1:{steady_server.port}/hook",
                "flaky": f"http://127.0.0.1:{port}/hook",
            }
        )
    )
    await rig.calls(2)
    await until(lambda: len(flaky.delivered()) == 4)
    await runner.cleanup()  # the receiver goes away
    await rig.calls(3)
    await until(lambda: len(steady.delivered()) == 10)
    await until(lambda: any(r["state"] == "failed" for r in rig.rows("flaky")))
    assert len(flaky.got) == 4
    runner = await serve_at(flaky.app(), port)  # and comes back
    try:
        await until(lambda: len(flaky.delivered()) == 10)
    finally:
        await runner.cleanup()
    assert flaky.delivered() == [r["event_id"] for r in rig.rows("flaky")]
    assert steady.delivered() == [r["event_id"] for r in rig.rows("steady")]
    events = {r["event_id"] for r in rig.rows("flaky")}
    assert events == {r["event_id"] for r in rig.rows("steady")}, "one id per event"


CHILD = """
import asyncio, sys
from ctm_pbx.adapters.config_loader import load_config
from ctm_pbx.adapters.outbox_delivery import OutboxDelivery
from ctm_pbx.adapters.store.writer import StoreWriter
from tests.outbox_helpers import whole_call

async def main():
    cfg = load_config(sys.argv[1])
    writer = StoreWriter(cfg.database.path)
    delivery = OutboxDelivery(cfg, writer)
    await delivery.start()
    for i in range(int(sys.argv[2])):
        await writer.run(whole_call, f"kill-{i}", 5.0)  # committed when it returns
        print(i, flush=True)
    await asyncio.sleep(3600)  # delivering until killed

asyncio.run(main())
"""


async def test_committed_events_are_delivered_after_a_kill_9(
    aiohttp_server, make_rig, tmp_path: Path
) -> None:
    """The daemon is killed (SIGKILL) while it delivers: after the restart every event
    it committed arrives, in order; only ones in flight at the kill arrive twice."""
    rx = Receiver()
    slow = web.Application()

    async def handle(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.02)
        return await rx.handle(request)

    slow.router.add_post("/hook", handle)
    server = await aiohttp_server(slow)
    db = tmp_path / "ctm.db"
    writer = StoreWriter(str(db))
    writer.run_sync(migrate)
    writer.close()
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(
        f"database: {{path: {db}}}\n"
        f"webhooks:\n  crm:\n    url: http://127.0.0.1:{server.port}/hook\n"
        f"    secret: {SECRET}\n    events: [call.started, call.completed]\n"
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(cfg_file), "40",
        stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    assert child.stdout is not None
    written = -1
    while written < 39:
        line = await asyncio.wait_for(child.stdout.readline(), 20)
        assert line, "the child wrote its calls"
        written = int(line)
    await until(lambda: len(rx.got) >= 10)
    child.kill()  # SIGKILL: no clean-up at all
    await child.wait()
    before = len(rx.got)
    assert before < 80, "killed mid-delivery"
    rig = await make_rig(hooks_config({"crm": f"http://127.0.0.1:{server.port}/hook"}))
    want = [r["event_id"] for r in rig.rows("crm")]
    assert len(want) == 80, "every committed call's events are there"
    await until(lambda: set(rx.delivered()) == set(want), timeout=20)
    await until(lambda: {r["state"] for r in rig.rows("crm")} == {"delivered"})
    first_seen = list(dict.fromkeys(rx.delivered()))
    assert first_seen == want, "in order, across the restart"
    assert len(rx.delivered()) - len(want) <= 64, "at most a batch in flight is sent twice"


def self_signed(tmp_path: Path) -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 that no one signed."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


async def test_a_certificate_that_does_not_verify_is_a_failed_attempt(
    make_rig, tmp_path: Path
) -> None:
    rx = Receiver()
    runner = web.AppRunner(rx.app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=self_signed(tmp_path)).start()
    try:
        rig = await make_rig(
            hooks_config({"crm": f"https://127.0.0.1:{port}/hook"}, events="[call.completed]")
        )
        await rig.calls(1)
        await until(lambda: rig.rows("crm")[0]["attempts"] >= 2)
        (row,) = rig.rows("crm")
        assert row["state"] in ("failed", "dead") and "certificate" in row["last_error"].lower()
        assert rx.got == [], "nothing was sent over a connection that did not verify"
    finally:
        await runner.cleanup()


async def test_events_too_old_are_given_up_unsent(aiohttp_server, make_rig) -> None:
    rx = Receiver()
    server = await aiohttp_server(rx.app())
    rig = await make_rig(
        hooks_config({"crm": f"http://127.0.0.1:{server.port}/hook"}, events="[call.completed]")
    )
    await rig.delivery.close()  # written while the worker is away ...
    await rig.writer.run(outbox.attach, outbox.routing_for(rig.delivery.config))
    await rig.calls(1)
    await rig.writer.run(
        lambda db: db.execute("UPDATE outbox SET queued_at = '2026-01-01T00:00:00.000Z'")
    )
    rig.delivery = OutboxDelivery(rig.delivery.config, rig.writer)  # ... and found old
    await rig.delivery.start()
    await until(lambda: rig.rows("crm")[0]["state"] == "dead")
    assert "older than 1 h" in rig.rows("crm")[0]["last_error"] and rx.got == []


async def test_stopping_does_not_wait_for_a_stalled_send(aiohttp_server, make_rig) -> None:
    """The daemon's stop cuts a send in flight short; the event goes after the restart."""
    rx = Receiver(plan=["stall"])
    server = await aiohttp_server(rx.app())
    cfg = hooks_config(
        {"crm": f"http://127.0.0.1:{server.port}/hook"}, events="[call.completed]", timeout=60
    )
    rig = await make_rig(cfg)
    await rig.calls(1)
    await until(lambda: len(rx.got) == 1)
    t0 = time.monotonic()
    await rig.delivery.close()
    assert time.monotonic() - t0 < 5, "not the 60 s of the send's timeout"
    assert rig.rows("crm")[0]["state"] == "pending"
    rig.delivery = OutboxDelivery(rig.delivery.config, rig.writer)
    await rig.delivery.start()
    await until(lambda: rig.rows("crm")[0]["state"] == "delivered")
    assert [g["event_id"] for g in rx.got] == [rig.rows("crm")[0]["event_id"]] * 2


async def test_the_call_path_does_not_wait_for_a_stalled_receiver(aiohttp_server, make_rig) -> None:
    """Calls are written at their own pace while every send stalls: the loop stays free."""
    rx = Receiver(default="stall")
    server = await aiohttp_server(rx.app())
    rig = await make_rig(hooks_config({"crm": f"http://127.0.0.1:{server.port}/hook"}, timeout=60))
    await rig.calls(1)
    await until(lambda: len(rx.got) == 1)  # a send hangs from now on
    t0 = time.monotonic()
    lags = []
    for _ in range(20):
        await rig.calls(1)
        before = time.monotonic()
        await asyncio.sleep(0.005)
        lags.append(time.monotonic() - before - 0.005)
    assert time.monotonic() - t0 < 3, "twenty calls' writes, not twenty sends"
    assert max(lags) < 0.5, "the event loop is never blocked by a send"
    assert len(rx.got) == 1 and len(rig.rows("crm")) == 42


def reload(rig: Rig, cfg: Config) -> None:
    """As the daemon's reload does: the database setting is the running one."""
    rig.delivery.reconfigure(dataclasses.replace(cfg, database=rig.delivery.config.database))


async def test_a_reload_adds_removes_and_changes_destinations(aiohttp_server, make_rig) -> None:
    """``reconfigure`` (the daemon's SIGHUP): events of calls after it go to the
    destinations of the new config, with their new settings; a removed one gets
    nothing more, and its waiting events stay in the outbox."""
    first, second = Receiver(), Receiver()
    one = await aiohttp_server(first.app())
    two = await aiohttp_server(second.app())
    rig = await make_rig(hooks_config({}))  # no destinations at start: nothing sends
    assert not rig.delivery.enabled
    await rig.calls(1)
    assert rig.rows("crm") == []
    reload(rig, hooks_config({"crm": f"http://127.0.0.1:{one.port}/hook"}))
    await rig.calls(1)
    await until(lambda: len(first.delivered()) == 2)
    # crm moves to another receiver, erp is added
    reload(
        rig,
        hooks_config(
            {
                "crm": f"http://127.0.0.1:{two.port}/elsewhere",
                "erp": f"http://127.0.0.1:{two.port}/hook",
            }
        ),
    )
    await rig.calls(1)
    await until(lambda: len(second.delivered()) == 4)
    assert len(first.got) == 2, "crm's new URL took its events"
    # erp is removed: a later call's events reach crm only; erp's rows wait
    reload(rig, hooks_config({"crm": f"http://127.0.0.1:{one.port}/hook"}))
    await rig.calls(1)
    await until(lambda: len(first.delivered()) == 4)
    await asyncio.sleep(0.3)
    assert len(second.got) == 4, "nothing more for the removed destination"
    assert len(rig.rows("erp")) == 2 and len(rig.rows("crm")) == 6
    assert all(g["signed"] for g in first.got + second.got)
