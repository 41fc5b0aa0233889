"""The ARI client and call handler against an in-process fake ARI (aiohttp).

The real Asterisk runs in tests/integration; these pin the adapter's own
behaviour: requests it sends, 404 handling, handler errors, reconnects and
reconciliation after a restart (results the dialplan kept in globals).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import WSMsgType, web

from ctm_pbx.adapters.ari_calls import AriCallHandler
from ctm_pbx.adapters.ari_client import AriClient, Backoff
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store import numbers as number_store
from ctm_pbx.adapters.store.schema import migrate
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.core import callflow
from ctm_pbx.core.inventory import NumberRecord
from tests.helpers import config

DID = "+13125550142"


@dataclass
class FakeAri:
    """Just enough of ARI: the event socket and the endpoints ctm-pbx calls."""

    requests: list[tuple[str, str, dict]] = field(default_factory=list)
    gone: set[str] = field(default_factory=set)
    live_channels: list[dict] = field(default_factory=list)
    app_channels: list[str] = field(default_factory=list)
    globals: dict[str, str] = field(default_factory=dict)
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    connects: int = 0
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ari/events", self.events)
        app.router.add_route("*", "/ari/{tail:.*}", self.rest)
        return app

    async def events(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        self.connects += 1
        self.connected.set()
        async for msg in ws:
            if msg.type is WSMsgType.CLOSE:
                break
        return ws

    async def rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        self.requests.append((request.method, path, dict(request.query)))
        parts = path.strip("/").split("/")
        if parts[0] == "channels" and len(parts) == 3:
            if parts[1] in self.gone:
                return web.json_response({"message": "Channel not found"}, status=404)
            return web.Response(status=204)
        if path == "/channels":
            return web.json_response(self.live_channels)
        if parts[0] == "applications" and len(parts) == 2:
            return web.json_response({"name": parts[1], "channel_ids": self.app_channels})
        if path == "/asterisk/variable":
            name = request.query["variable"]
            if request.method == "POST":
                self.globals.pop(name, None)
                return web.Response(status=204)
            return web.json_response({"value": self.globals.get(name, "")})
        return web.json_response({})

    async def send(self, event: dict) -> None:
        await self.sockets[-1].send_str(json.dumps(event))

    def moves(self) -> list[tuple[str, dict]]:
        return [(p, q) for m, p, q in self.requests if p.endswith(("/continue", "/variable"))]


def stasis(channel_id: str, *args: str, caller: str = "3125550100") -> dict:
    return {
        "type": "StasisStart",
        "args": list(args),
        "channel": {
            "id": channel_id,
            "caller": {"number": caller, "name": "Caller"},
            "dialplan": {"context": "ctm-inbound", "exten": DID[1:]},
        },
    }


@dataclass
class Rig:
    fake: FakeAri
    handler: AriCallHandler
    writer: StoreWriter
    stop: asyncio.Event

    async def settle(self) -> None:
        for _ in range(3):
            await asyncio.sleep(0.01)
            await self.handler.drain()

    def row(self, channel_id: str) -> dict:
        return self.writer.run_sync(call_store.call_by_channel, channel_id)


@pytest.fixture
async def rig(tmp_path, aiohttp_server) -> AsyncIterator[Rig]:
    fake = FakeAri()
    server = await aiohttp_server(fake.app())
    cfg = config()
    writer = StoreWriter(str(tmp_path / "ctm.db"))
    writer.run_sync(migrate)
    writer.run_sync(
        number_store.add_numbers,
        [
            NumberRecord(DID, "billboard", None, "seq"),
            NumberRecord("+13125550143", "billboard", None, "one"),
        ],
        now="2026-11-28T00:00:00.000Z",
    )
    ari = AriClient(f"http://127.0.0.1:{server.port}", "ctm", "secret", "ctm-pbx")
    await ari.start()
    handler = AriCallHandler(cfg, ari, writer)
    await handler.load()
    stop = asyncio.Event()

    async def on_connect() -> None:
        await handler.reconcile()

    task = asyncio.create_task(
        ari.run_events(handler.on_event, on_connect, stop, Backoff(0.01, 0.05))
    )
    await asyncio.wait_for(fake.connected.wait(), 5)
    await asyncio.wait_for(ari.connected.wait(), 5)
    yield Rig(fake, handler, writer, stop)
    stop.set()
    await task
    await ari.close()
    writer.close()


async def test_inbound_continues_into_dial_and_ended_completes_the_row(rig: Rig) -> None:
    await rig.fake.send(stasis("c1", "inbound", DID[1:]))
    await rig.settle()
    assert rig.fake.moves() == [
        (
            "/channels/c1/continue",
            {"context": "ctm-dial", "extension": "DPJSIP/phone1,5", "priority": "1"},
        )
    ]
    row = rig.row("c1")
    assert row["status"] == "in_progress" and row["caller_number"] == "+13125550100"
    await rig.fake.send(stasis("c1", "dialed", "BUSY", "100", "0", "17", ""))
    await rig.settle()
    assert rig.fake.moves()[-1][1]["extension"] == "DPJSIP/phone2,5"
    await rig.fake.send(stasis("c1", "ended", "ANSWER", "9000", "6000", "16", "phone2", ""))
    await rig.settle()
    row = rig.row("c1")
    assert (row["outcome"], row["answered_by"], row["talk_seconds"]) == ("answered", "desk-2", 6.0)
    assert [leg["result"] for leg in row["legs"]] == ["busy", "answered"]
    assert rig.handler.calls == {}, "finished calls are forgotten"


async def test_long_dial_strings_travel_in_a_channel_variable(rig: Rig, monkeypatch) -> None:
    long = "PJSIP/" + "x" * 80
    monkeypatch.setattr(callflow.Step, "dial_args", lambda self: f"{long},5")
    await rig.fake.send(stasis("c2", "inbound", DID[1:]))
    await rig.settle()
    (var_path, var_q), (cont_path, cont_q) = rig.fake.moves()
    assert var_path == "/channels/c2/variable" and var_q == {
        "variable": "CTM_DIAL",
        "value": f"{long},5",
    }
    assert cont_q["extension"] == "var"


async def test_caller_gone_before_continue_is_abandoned(rig: Rig) -> None:
    rig.fake.gone.add("c3")
    await rig.fake.send(stasis("c3", "inbound", DID[1:]))
    await rig.settle()
    row = rig.row("c3")
    assert row["status"] == "completed" and row["outcome"] == "abandoned"


async def test_handler_error_sends_the_call_to_the_failsafe(rig: Rig, monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("injected")

    monkeypatch.setattr(callflow, "plan_route", boom)
    await rig.fake.send(stasis("c4", "inbound", DID[1:]))
    await rig.settle()
    assert rig.fake.moves() == [
        ("/channels/c4/continue", {"context": "ctm-failsafe", "extension": "app", "priority": "1"})
    ]
    await rig.fake.send(stasis("c4", "ended", "ANSWER", "3000", "2000", "16", "failsafe", "1"))
    await rig.settle()
    row = rig.row("c4")
    assert row["failsafe"] == 1 and row["outcome"] == "answered"
    assert "injected" in row["path"][0]["failsafe"]


async def test_unknown_number_goes_to_the_failsafe_and_is_logged(rig: Rig) -> None:
    await rig.fake.send(stasis("c5", "inbound", "13125550177"))
    await rig.settle()
    assert rig.fake.moves()[0][1]["context"] == "ctm-failsafe"
    assert rig.row("c5")["tracking_number"] == "+13125550177"


async def test_reconnects_and_reconciles_calls_that_ended_meanwhile(rig: Rig) -> None:
    await rig.fake.send(stasis("c6", "inbound", "13125550143"))
    await rig.fake.send(stasis("c7", "inbound", "13125550143"))
    await rig.settle()
    # While we were away c6 ended (its result left in a global variable); c7 left nothing.
    rig.fake.globals["CTM_PENDING_c6"] = "1795820000,ANSWER,10000,7000,16,phone1,"
    rig.fake.connected.clear()
    await rig.fake.sockets[-1].close()
    await asyncio.wait_for(rig.fake.connected.wait(), 5)
    await asyncio.sleep(0.05)
    await rig.settle()
    assert rig.fake.connects == 2
    # calls in memory are still live here; a restarted daemon has none
    rig.handler.calls.clear()
    await rig.handler.reconcile()
    c6, c7 = rig.row("c6"), rig.row("c7")
    assert (c6["outcome"], c6["answered_by"], c6["talk_seconds"]) == ("answered", "desk-1", 7.0)
    assert c7["outcome"] == "unknown" and c7["status"] == "completed"
    assert rig.fake.globals == {}, "collected results are deleted from Asterisk"


async def test_channel_waiting_in_stasis_after_reconnect_is_handled(rig: Rig) -> None:
    chan = stasis("c8", "inbound", DID[1:])["channel"]
    chan["dialplan"]["app_data"] = f"ctm-pbx,inbound,{DID[1:]}"
    rig.fake.live_channels = [chan]
    rig.fake.app_channels = ["c8"]
    await rig.handler.reconcile()
    await rig.settle()
    assert rig.fake.moves()[0][0] == "/channels/c8/continue"
    assert rig.row("c8")["route"] == "seq"
