"""The ARI client and call handler against an in-process fake ARI (aiohttp).

The real Asterisk runs in tests/integration; these pin the adapter's own
behaviour: requests it sends, 404 handling, handler errors, reconnects and
reconciliation after a restart (results the dialplan left in its call spool).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from aiohttp import WSMsgType, web

from ctm_pbx.adapters.ari_calls import EVENT_TYPES, AriCallHandler
from ctm_pbx.adapters.ari_client import AriClient, AriError, Backoff
from ctm_pbx.adapters.call_spool import CallSpool
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store import numbers as number_store
from ctm_pbx.adapters.store.schema import migrate
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.core.call import route_walk
from ctm_pbx.core.clock import parse_iso
from ctm_pbx.core.inventory import NumberRecord
from ctm_pbx.core.routing import Step
from tests.helpers import config

DID = "+13125550142"


@dataclass
class FakeAri:
    """Just enough of ARI: the event socket and the endpoints ctm-pbx calls.

    With ``ws_rest`` it also answers REST requests sent on the event socket, as
    Asterisk 22.4+ does (an older one ignores them)."""

    ws_rest: bool = False
    hold: bool = False  # leave REST requests on the socket unanswered
    held: asyncio.Event = field(default_factory=asyncio.Event)
    requests: list[tuple[str, str, dict]] = field(default_factory=list)
    transports: list[str] = field(default_factory=list)
    socket_requests: list[str] = field(default_factory=list)  # uris sent on the socket
    gone: set[str] = field(default_factory=set)
    not_in_stasis: set[str] = field(default_factory=set)  # over HTTP: already continued
    live_channels: list[dict] = field(default_factory=list)
    app_channels: list[str] = field(default_factory=list)
    globals: dict[str, str] = field(default_factory=dict)
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    connects: int = 0
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    allowed: set[str] | None = None  # the app's event filter (None: all), as Asterisk applies it

    def passes(self, message: dict) -> bool:
        return self.allowed is None or message.get("type") in self.allowed

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
            req = json.loads(msg.data)
            if req.get("type") == "RESTRequest":
                self.socket_requests.append(req["uri"])
            if not self.ws_rest or req.get("type") != "RESTRequest":
                continue
            if self.hold:
                self.held.set()
                continue
            uri = urlsplit("/" + req["uri"])
            status, body = self.answer(req["method"], uri.path, dict(parse_qsl(uri.query)), "ws")
            reply = {"type": "RESTResponse", "request_id": req["request_id"]}
            reply |= {"status_code": status, "reason_phrase": "", "uri": req["uri"]}
            if body is not None:
                reply |= {"content_type": "application/json", "message_body": json.dumps(body)}
            if self.passes(reply):  # Asterisk filters its answers like its events
                await ws.send_str(json.dumps(reply))
        return ws

    async def rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        if path.endswith("/eventFilter") and request.method == "PUT":
            self.allowed = {a["type"] for a in (await request.json())["allowed"]}
            return web.json_response({})
        status, body = self.answer(request.method, path, dict(request.query), "http")
        if body is None:
            return web.Response(status=status)
        return web.json_response(body, status=status)

    def answer(self, method: str, path: str, query: dict, transport: str) -> tuple[int, object]:
        self.requests.append((method, path, query))
        self.transports.append(transport)
        parts = path.strip("/").split("/")
        if parts[0] == "channels" and len(parts) == 3:
            if parts[1] in self.gone:
                return 404, {"message": "Channel not found"}
            if parts[1] in self.not_in_stasis and transport == "http":
                return 409, {"message": "Channel not in Stasis application"}
            return 204, None
        if path == "/channels":
            return 200, self.live_channels
        if parts[0] == "applications" and len(parts) == 2:
            return 200, {"name": parts[1], "channel_ids": self.app_channels}
        if path == "/asterisk/variable":
            name = query["variable"]
            if method == "POST":
                self.globals.pop(name, None)
                return 204, None
            return 200, {"value": self.globals.get(name, "")}
        return 200, {}

    async def send(self, event: dict) -> None:
        if self.passes(event):
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
    ari: AriClient
    connects_done: list[int]  # one entry per finished on_connect
    spool_path: Path

    async def settle(self) -> None:
        for _ in range(3):
            await asyncio.sleep(0.01)
            await self.handler.drain()

    def row(self, channel_id: str) -> dict:
        return self.writer.run_sync(call_store.call_by_channel, channel_id)


@pytest.fixture(params=["http", "ws"])
async def rig(request, tmp_path, aiohttp_server) -> AsyncIterator[Rig]:
    """The handler against a fake ARI, with REST over HTTP or over the event socket."""
    fake = FakeAri(ws_rest=request.param == "ws")
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
    handler.collect_spool = CallSpool(cfg, writer, str(tmp_path / "calls.spool")).collect
    await handler.load()
    stop = asyncio.Event()

    ready = asyncio.Event()
    connects_done: list[int] = []

    async def on_connect() -> None:
        await ari.set_event_filter(EVENT_TYPES)  # as the daemon does
        await ari.probe_ws_rest(timeout=0.2)
        await handler.reconcile()
        connects_done.append(1)
        ready.set()

    task = asyncio.create_task(
        ari.run_events(handler.on_event, on_connect, stop, Backoff(0.01, 0.05))
    )
    await asyncio.wait_for(fake.connected.wait(), 5)
    await asyncio.wait_for(ready.wait(), 5)
    yield Rig(fake, handler, writer, stop, ari, connects_done, tmp_path / "calls.spool")
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


async def test_a_call_whose_row_did_not_stand_never_writes_into_the_next_calls_row(
    rig: Rig, monkeypatch
) -> None:
    real = call_store.insert_step

    def broken(db, call_id, step) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(call_store, "insert_step", broken)
    await rig.fake.send(stasis("c30", "inbound", DID[1:]))
    await rig.settle()
    monkeypatch.setattr(call_store, "insert_step", real)
    assert rig.row("c30") is None, "the failed batch, row and all, was undone"
    # SQLite hands the freed row id to the next call
    await rig.fake.send(stasis("c31", "inbound", DID[1:]))
    await rig.settle()
    await rig.fake.send(stasis("c30", "ended", "ANSWER", "3000", "2000", "16", "phone1", ""))
    await rig.settle()
    assert rig.row("c31")["status"] == "in_progress", "c30's end is not written into c31's row"


async def test_long_dial_strings_travel_in_a_channel_variable(rig: Rig, monkeypatch) -> None:
    long = "PJSIP/" + "x" * 80
    monkeypatch.setattr(Step, "dial_args", lambda self: f"{long},5")
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

    monkeypatch.setattr(route_walk, "plan_route", boom)
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
    # While we were away c6 ended (its line in the call spool); c7 left nothing.
    spool = rig.spool_path
    spool.write_text(
        "v1|c6|c6|13125550143|3125550100|Caller|1795819990.000|1795820000.000||"
        "ANSWER,10000,7000,16,phone1,,,,,\n"
    )
    rig.fake.connected.clear()
    await rig.fake.sockets[-1].close()
    await asyncio.wait_for(rig.fake.connected.wait(), 5)
    await asyncio.sleep(0.05)
    await rig.settle()
    assert rig.fake.connects == 2
    probes = [uri for uri in rig.fake.socket_requests if uri == "asterisk/ping"]
    assert len(probes) == 2, "Asterisk may have been upgraded or downgraded meanwhile"
    # calls in memory are still live here; a restarted daemon has none
    rig.handler.calls.clear()
    await rig.handler.reconcile()
    c6, c7 = rig.row("c6"), rig.row("c7")
    assert (c6["outcome"], c6["answered_by"], c6["talk_seconds"]) == ("answered", "desk-1", 7.0)
    assert c6["failsafe"] == 0 and c6["attributed_late"] == 0
    assert c7["outcome"] == "unknown" and c7["status"] == "completed"
    assert list(spool.parent.glob("calls.spool*")) == [], "imported lines are deleted"


async def test_a_call_that_began_after_the_channel_list_is_not_judged_by_it(rig: Rig) -> None:
    """Reconciling takes a while (the spool is imported between the channel list and the
    open rows): a call that began after the list is not in it, and may have ended
    meanwhile with its row not yet completed. It is not "gone unseen"."""
    await rig.fake.send(stasis("c30", "inbound", DID[1:]))
    await rig.settle()
    began = parse_iso(rig.row("c30")["started_at"])
    rig.handler.calls.clear()  # it ended meanwhile (out of memory), its finish not yet in
    rig.fake.live_channels, rig.fake.app_channels = [], []  # listed before it began
    rig.handler.clock = lambda: began - timedelta(seconds=1)
    await rig.handler.reconcile()
    await rig.settle()
    assert rig.row("c30")["status"] == "in_progress", "left to its own end"
    rig.handler.clock = lambda: began + timedelta(seconds=1)  # one that began before: gone
    await rig.handler.reconcile()
    await rig.settle()
    assert rig.row("c30")["outcome"] == "unknown"


async def test_channel_waiting_in_stasis_after_reconnect_is_handled(rig: Rig) -> None:
    chan = stasis("c8", "inbound", DID[1:])["channel"]
    chan["dialplan"]["app_data"] = f"ctm-pbx,inbound,{DID[1:]}"
    rig.fake.live_channels = [chan]
    rig.fake.app_channels = ["c8"]
    await rig.handler.reconcile()
    await rig.settle()
    assert rig.fake.moves()[0][0] == "/channels/c8/continue"
    assert rig.row("c8")["route"] == "seq"


async def test_rest_requests_go_on_the_event_socket_when_asterisk_answers_them(rig: Rig) -> None:
    await rig.fake.send(stasis("c9", "inbound", DID[1:]))
    await rig.settle()
    (method, path, query), transport = rig.fake.requests[-1], rig.fake.transports[-1]
    assert (method, path, query["context"]) == ("POST", "/channels/c9/continue", "ctm-dial")
    assert transport == ("ws" if rig.fake.ws_rest else "http")


async def test_errors_come_back_the_same_way_on_either_transport(rig: Rig) -> None:
    rig.fake.gone.add("c10")
    with pytest.raises(AriError) as err:
        await rig.ari.continue_in_dialplan("c10", "ctm-dial", "x")
    assert err.value.status == 404 and "Channel not found" in str(err.value)
    assert await rig.ari.get_global("CTM_NONE") == ""
    rig.fake.live_channels = [{"id": "c11"}]
    assert await rig.ari.channels() == [{"id": "c11"}]


@pytest.mark.parametrize("rig", ["ws"], indirect=True)
async def test_listings_go_over_http_even_when_the_socket_carries_rest(rig: Rig) -> None:
    # Asterisk 22 builds each frame it sends on its thread's stack: a channel list of a
    # busy PBX on the socket crashes it (see the integration test of the same name)
    rig.fake.app_channels = ["c14"]
    rig.fake.live_channels = [{"id": "c14"}]
    await rig.handler.reconcile()
    sent = dict(zip((p for _, p, _ in rig.fake.requests), rig.fake.transports, strict=True))
    assert sent["/channels"] == "http" and sent["/applications/ctm-pbx"] == "http"
    await rig.ari.continue_in_dialplan("c14", "ctm-dial", "x")
    assert rig.fake.transports[-1] == "ws", "per-call requests stay on the socket"


async def lose_the_socket_with_a_request_on_it(rig: Rig, channel_id: str) -> None:
    rig.fake.hold = True
    await rig.fake.send(stasis(channel_id, "inbound", DID[1:]))
    await asyncio.wait_for(rig.fake.held.wait(), 5)
    rig.fake.hold = False
    await rig.fake.sockets[-1].close()
    # at once, not after the request's 10 s timeout
    await asyncio.wait_for(rig.handler.drain(), 2)


@pytest.mark.parametrize("rig", ["ws"], indirect=True)  # only a socket request dies with it
async def test_a_request_lost_with_the_socket_is_sent_again_over_http(rig: Rig) -> None:
    await lose_the_socket_with_a_request_on_it(rig, "c12")
    sent = zip(rig.fake.requests, rig.fake.transports, strict=True)
    moves = [(q["context"], t) for (_, p, q), t in sent if p == "/channels/c12/continue"]
    assert moves == [("ctm-dial", "http")], "the socket never answered; HTTP did"
    assert [leg["receiving_number"] for leg in rig.row("c12")["legs"]] == ["desk-1"]


@pytest.mark.parametrize("rig", ["ws"], indirect=True)
async def test_a_lost_continue_that_asterisk_did_run_is_not_undone(rig: Rig) -> None:
    rig.fake.not_in_stasis.add("c13")  # the retry finds the channel already moved: 409
    await lose_the_socket_with_a_request_on_it(rig, "c13")
    contexts = [q.get("context") for _, p, q in rig.fake.requests if p.endswith("/continue")]
    assert contexts == ["ctm-dial"], "no fail-safe for a call that is ringing"
    await rig.fake.connected.wait()
    await asyncio.wait_for(rig.ari.connected.wait(), 5)
    await rig.fake.send(stasis("c13", "ended", "ANSWER", "3000", "2000", "16", "phone1", ""))
    await rig.settle()
    row = rig.row("c13")
    assert row["outcome"] == "answered" and row["failsafe"] == 0


@pytest.mark.parametrize("rig", ["http"], indirect=True)
async def test_an_asterisk_that_never_answers_on_the_socket_is_not_asked_forever(
    rig: Rig,
) -> None:
    for n in range(2, 6):  # four reconnections after the first connection
        rig.fake.connected.clear()
        await rig.fake.sockets[-1].close()
        await asyncio.wait_for(rig.fake.connected.wait(), 5)
        while len(rig.connects_done) < n:
            await asyncio.sleep(0.01)
    probes = [uri for uri in rig.fake.socket_requests if uri == "asterisk/ping"]
    assert len(probes) == 3 and rig.ari.rest_transport == "http"


async def test_an_end_without_a_row_is_left_to_the_call_spool(rig: Rig) -> None:
    # a crash lost the row of a call that was already ringing: its "ended" finds nothing
    await rig.fake.send(stasis("c40", "ended", "ANSWER", "3000", "2000", "16", "phone1", ""))
    await rig.settle()
    assert rig.row("c40") is None  # the spool line will bring it (tests/test_call_spool.py)
    assert "c40" not in rig.handler.calls, "nothing kept in memory for it"
    assert rig.fake.moves() == []
