"""ARI mode: turn Stasis events into call-flow events, and call-flow actions into
ARI requests and store writes.

Per call, Asterisk enters our app a few times (see dialplan/ctm-pbx.conf):
``inbound`` (decide the first leg), ``dialed`` (Dial() returned unconnected:
decide the next) and ``ended`` (the hangup handler's report). Each entry is one
``StasisStart``; the decisions leave by ``continue``, so a call costs one REST
request per leg and a handful of events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import sqlite_utils

from ctm_pbx.adapters import media
from ctm_pbx.adapters.ari_client import AriClient, AriError
from ctm_pbx.adapters.call_records import record
from ctm_pbx.adapters.finished_calls import FinishedCall, FinishedHook, report_finished
from ctm_pbx.adapters.live_inventory import LiveInventory
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.adapters.wall_clock import utcnow
from ctm_pbx.adapters.zip_lookup import lookup_zip
from ctm_pbx.core.call.actions import (
    Action,
    CollectDigits,
    DialStep,
    EndCall,
    EnterQueue,
    FinishCall,
    RememberRoute,
    SendToFailsafe,
    StartCall,
    TakeMessage,
)
from ctm_pbx.core.call.ari_flow import CallFlow
from ctm_pbx.core.call.events import (
    DialResult,
    DialReturned,
    DigitsEntered,
    Ended,
    Event,
    Gone,
    HandlerFailed,
    Inbound,
    QueueResult,
    QueueReturned,
)
from ctm_pbx.core.clock import parse_iso
from ctm_pbx.core.model import Config, NumberInfo
from ctm_pbx.core.phone import caller_e164, did_e164
from ctm_pbx.core.routing import Ring, RouteMemory, Step

log = logging.getLogger(__name__)

DIAL_CONTEXT = "ctm-dial"
IVR_CONTEXT = "ctm-ivr"
QUEUE_CONTEXT = "ctm-queue"
END_CONTEXT = "ctm-end"
FAILSAFE_CONTEXT = "ctm-failsafe"
MAX_EXTENSION = 79  # Asterisk's AST_MAX_EXTENSION is 80 with the terminator
EVENT_TYPES = ["StasisStart"]  # all ctm-pbx needs: each entry into the app


MOVES = (
    DialStep,
    CollectDigits,
    EnterQueue,
    TakeMessage,
    EndCall,
    SendToFailsafe,
)  # actions that move the channel
VOICEMAIL_CONTEXT = "ctm-voicemail"
MEDIA_SETTLE_S = 1.5  # Asterisk finishes a recording's file just after the hangup


@dataclass
class _Call:
    flow: CallFlow
    channel_id: str
    linkedid: str | None = None
    call_id: int | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    handling: int = 0  # StasisStart tasks created and not finished
    # the config the call started with: a reload applies to the next call, not this one
    config: Config | None = None
    start: StartCall | None = None  # for the finished call's log line
    confidence: float | None = None  # of its attribution (set on the writer thread)


def parse_result(args: list[str]) -> DialResult:
    """``[status, dialed_ms, answered_ms, cause, peer, …]`` from the dialplan."""

    def num(i: int) -> int:
        try:
            return int(args[i])
        except (IndexError, ValueError):
            return 0

    return DialResult(
        status=args[0] if args else "",
        dialed_ms=num(1),
        answered_ms=num(2),
        cause=num(3) if len(args) > 3 and args[3] else None,
        peer=args[4] if len(args) > 4 else "",
    )


def _record(
    db: sqlite_utils.Database, config: Config, call: _Call, actions: list[Action], now: datetime
) -> None:
    """The recorder's write of a batch (on the writer thread); the call keeps the
    confidence of its attribution, for its log line."""
    _visitor, confidence = record(db, config, call, actions, now)
    if any(isinstance(a, StartCall) for a in actions):
        call.confidence = confidence


class AriCallHandler:
    """Routes the calls of one Stasis app."""

    def __init__(
        self,
        config: Config,
        ari: AriClient,
        writer: StoreWriter,
        clock: Callable[[], datetime] = utcnow,
        inventory: LiveInventory | None = None,
    ) -> None:
        self.config = config
        self.ari = ari
        self.writer = writer
        self.clock = clock
        self.inventory = inventory or LiveInventory(writer)
        self.calls: dict[str, _Call] = {}
        self._tasks: set[asyncio.Task] = set()
        self.calls_finished = 0
        self.on_finished: FinishedHook | None = None  # each finished call (the metrics)
        # imports the dialplan's call spool (adapters/call_spool.py): before reconciling
        self.collect_spool: Callable[[], Awaitable[object]] | None = None

    # -- lifecycle ---------------------------------------------------------------

    @property
    def numbers(self) -> dict[str, NumberInfo]:
        return self.inventory.numbers

    @property
    def memory(self) -> dict[str, RouteMemory]:
        return self.inventory.memory

    async def load(self) -> None:
        if not self.inventory.loaded:
            await self.inventory.load()

    async def refresh_numbers(self) -> None:
        await self.inventory.refresh()

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- health ----------------------------------------------------------------------

    def status(self) -> dict:
        """ARI mode's part of the daemon's status (``ctm-pbx`` status, ``/healthz``)."""
        return {
            "ari_connected": self.ari.connected.is_set(),
            "app": self.config.asterisk.app,
            "calls_in_progress": len(self.calls),
            "calls_finished": self.calls_finished,
            "ari_requests": self.ari.requests_sent,
            "ari_rest_transport": self.ari.rest_transport,
        }

    def components(self) -> dict:
        """ARI mode's parts for ``/healthz``, each with ``ok``."""
        ari = self.ari.connected.is_set()
        return {"ari": {"ok": ari, "connected": ari}}

    # -- events --------------------------------------------------------------------

    def on_event(self, event: dict) -> None:
        """Called by the ARI client for each event, in order."""
        if event.get("type") != "StasisStart":
            return
        channel = event.get("channel") or {}
        channel_id = channel.get("id")
        if not channel_id:
            return
        call = self.calls.get(channel_id)
        if call is None:
            config = self.config
            call = self.calls[channel_id] = _Call(
                flow=CallFlow(config, self.memory, zip_lookup=lookup_zip),
                channel_id=channel_id,
                linkedid=channel.get("linkedid"),
                config=config,
            )
        args = list(event.get("args") or [])
        if args[:1] == ["ended"] and call.flow.started is not None and not call.handling:
            # the usual end of a call: nothing to ask Asterisk, nothing in flight
            self._ended_now(call, args)
            return
        call.handling += 1
        task = asyncio.create_task(self._stasis_start(call, event, args))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _ended_now(self, call: _Call, args: list[str]) -> None:
        """The hangup handler's report of a call in memory, handled without a task."""
        try:
            actions = call.flow.handle(ended_event(self.clock(), args))
            self._write(call, [a for a in actions if not isinstance(a, MOVES)])
            if any(isinstance(a, MOVES) for a in actions):
                raise RuntimeError(f"a move after the hangup: {actions}")
        except Exception:  # the channel is hanging up: nothing to rescue
            log.exception("call %s: handler error at its end", call.channel_id)
        finally:
            if call.flow.done:
                self.calls.pop(call.channel_id, None)

    async def _stasis_start(self, call: _Call, event: dict, args: list[str]) -> None:
        async with call.lock:
            kind = args[0] if args else ""
            now = self.clock()
            try:
                if kind == "inbound":
                    config = call.config or self.config
                    await self._handle(call, self._inbound_event(event, args, now, config))
                elif kind == "dialed":
                    await self._ensure_flow(call)
                    await self._handle(call, DialReturned(now, parse_result(args[1:])))
                elif kind == "digits":
                    await self._ensure_flow(call)
                    digits = args[1] if len(args) > 1 else ""
                    status = args[2] if len(args) > 2 else "OK"
                    await self._handle(call, DigitsEntered(now, digits, status))
                elif kind == "queued":
                    await self._ensure_flow(call)
                    await self._handle(call, QueueReturned(now, parse_queue(args[1:4])))
                elif kind == "ended":
                    try:
                        await self._ensure_flow(call)
                    except LookupError:
                        # a crash lost its row: the call spool's line brings it
                        log.info("call %s ended without a row: left to the spool", call.channel_id)
                        call.flow.close()
                        return
                    await self._handle(call, ended_event(now, args))
                else:
                    log.warning("StasisStart with unknown args %r: back to the dialplan", args)
                    await self._raw_failsafe(call.channel_id)
            except Exception as exc:  # any handler error: the fail-safe takes the call
                log.exception("call %s: handler error", call.channel_id)
                await self._fail(call, exc, now, ended=kind == "ended")
            finally:
                call.handling -= 1
                if call.flow.done:
                    self.calls.pop(call.channel_id, None)

    def _inbound_event(
        self, event: dict, args: list[str], now: datetime, config: Config
    ) -> Inbound:
        channel = event["channel"]
        raw_did = args[1] if len(args) > 1 else channel.get("dialplan", {}).get("exten", "")
        country = config.tracking.default_country
        did = did_e164(raw_did, country) or raw_did
        caller = channel.get("caller") or {}
        return Inbound(
            now=now,
            did=did,
            number=self.numbers.get(did),
            caller_number=caller_e164(caller.get("number"), country),
            caller_name=caller.get("name") or None,
        )

    async def _handle(self, call: _Call, event: Event) -> None:
        actions = call.flow.handle(event)
        await self._apply(call, actions)

    async def _apply(self, call: _Call, actions: list[Action]) -> None:
        self._write(call, [a for a in actions if not isinstance(a, MOVES)])
        try:
            await self._move(call.channel_id, [a for a in actions if isinstance(a, MOVES)])
        except AriError as exc:
            if exc.status != 404:
                raise
            # the caller hung up while we decided
            await self._apply(call, call.flow.handle(Gone(self.clock(), "caller hung up", True)))

    def _write(self, call: _Call, records: list[Action]) -> None:
        """Queue the store writes of a batch of actions; nothing waits for them.

        The writer runs jobs in order, so a call's later writes find the row id the
        first one set on ``call``; a failure is logged by the writer. If the row's
        creation did not stand, the call forgets the id (SQLite would give it to the
        next call, whose row the later writes would change).
        """
        if not records:
            return
        for remember in (a for a in records if isinstance(a, RememberRoute)):
            self.memory[remember.route] = remember.memory  # the next call's round robin
        creates = any(isinstance(a, StartCall) for a in records)
        for start in (a for a in records if isinstance(a, StartCall)):
            call.start = start
        self.writer.defer(
            _record,
            call.config or self.config,
            call,
            records,
            self.clock(),
            what=f"call log write ({call.channel_id})",
            on_error=(lambda _exc: setattr(call, "call_id", None)) if creates else None,
        )
        for fin in (a for a in records if isinstance(a, FinishCall)):
            self.calls_finished += 1
            summary = FinishedCall.of(
                "ari", call.call_id, call.start, fin, call.confidence, call.flow.route
            )
            report_finished(summary, self.on_finished)
            if fin.recorded or fin.voicemail:
                self._spawn(self._collect_media(call, fin))

    async def _move(self, channel_id: str, moves: list[Action]) -> None:
        for move in moves:
            if isinstance(move, DialStep):
                prefix = "RD" if move.record else "D"
                ext = prefix + move.dial_args
                if len(ext) > MAX_EXTENSION:
                    await self.ari.set_channel_var(channel_id, "CTM_DIAL", move.dial_args)
                    ext = "Rvar" if move.record else "var"
                await self.ari.continue_in_dialplan(channel_id, DIAL_CONTEXT, ext)
            elif isinstance(move, TakeMessage):
                await self.ari.set_channel_var(channel_id, "CTM_VM_GREETING", move.greeting)
                await self.ari.continue_in_dialplan(
                    channel_id, VOICEMAIL_CONTEXT, f"V{move.max_seconds}"
                )
            elif isinstance(move, CollectDigits):
                await self.ari.set_channel_var(channel_id, "CTM_READ", move.read_args())
                await self.ari.continue_in_dialplan(channel_id, IVR_CONTEXT, "read")
            elif isinstance(move, EnterQueue):
                if move.whisper:
                    await self.ari.set_channel_var(channel_id, "CTM_WHISPER", move.whisper)
                ext = ("R" if move.record else "") + move.extension()
                await self.ari.continue_in_dialplan(channel_id, QUEUE_CONTEXT, ext)
            elif isinstance(move, EndCall):
                await self.ari.continue_in_dialplan(channel_id, END_CONTEXT, move.how)
            elif isinstance(move, SendToFailsafe):
                await self.ari.continue_in_dialplan(channel_id, FAILSAFE_CONTEXT, "app")

    def _spawn(self, coro) -> None:  # noqa: ANN001 - a coroutine
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _collect_media(self, call: _Call, fin: FinishCall) -> None:
        """Link the call's recording / voicemail message, with its length, to the row."""
        await asyncio.sleep(MEDIA_SETTLE_S)  # by then the row's writes are done too
        call_id, channel_id = call.call_id, call.channel_id
        if call_id is None:
            log.warning("call %s: no row to link its media to", channel_id)
            return
        rec = (call.config or self.config).asterisk.recordings
        for kind, wanted, name in (
            ("recording", fin.recorded, f"ctm-{channel_id}.wav"),
            ("voicemail", fin.voicemail, f"ctm-vm-{channel_id}.wav"),
        ):
            if not wanted:
                continue
            seconds = await asyncio.to_thread(media.wav_seconds, f"{rec.readable_dir}/{name}")
            if seconds is None:
                log.warning("call %s: no %s file %s", channel_id, kind, name)
                continue
            path = f"{rec.dir}/{name}"
            self.writer.defer(call_store.record_media, call_id, kind, path, seconds, on_loop=False)

    async def _fail(self, call: _Call, exc: Exception, now: datetime, *, ended: bool) -> None:
        """Send the channel to the dialplan fail-safe; still complete the row."""
        if ended:
            return  # the channel is already hanging up; nothing to rescue
        try:
            actions = call.flow.handle(HandlerFailed(now, f"{type(exc).__name__}: {exc}"))
            await self._apply(call, actions)
        except Exception:
            log.exception("call %s: fail-safe handling failed too", call.channel_id)
            await self._raw_failsafe(call.channel_id)

    async def _raw_failsafe(self, channel_id: str) -> None:
        try:
            await self.ari.continue_in_dialplan(channel_id, FAILSAFE_CONTEXT, "app")
        except Exception as exc:
            log.error("call %s: could not reach the fail-safe: %s", channel_id, exc)

    # -- restarts ----------------------------------------------------------------

    async def _ensure_flow(self, call: _Call) -> None:
        """A call we met before a restart: rebuild its flow from the store."""
        if call.flow.started is not None:
            return
        row = await self.writer.run(call_store.call_by_channel, call.channel_id)
        if row is None:
            raise LookupError(f"no call row for channel {call.channel_id}")
        call.call_id = row["id"]
        call.config = call.config or self.config
        call.flow = resume_flow(call.config, row, self.memory)
        call.flow.zip_lookup = lookup_zip
        call.start = _start_of(row)

    async def reconcile(self) -> None:
        """After (re)connecting: finish or adopt the rows of calls still open.

        Only the calls that began before Asterisk's channels were listed are judged
        by that list: a call that began after it (calls keep coming while the spool is
        imported) is not in it, and may even have ended meanwhile, its row not yet
        completed; it is this process's to finish."""
        listed_at = self.clock()
        try:
            app = await self.ari.application()
            live = {c["id"]: c for c in await self.ari.channels()}
        except Exception as exc:
            log.warning("reconcile skipped: %s", exc)
            return
        if self.collect_spool is not None:
            try:  # the spool first: what it holds of a call beats "no result left"
                await self.collect_spool()
            except Exception:
                log.exception("call spool import failed")
        for chan, args in waiting_in_app(app, live):
            if chan["id"] in self.calls:
                continue
            # stuck in our app while we were away: replay its entry
            log.info("call %s waited in Stasis while we were away: %r", chan["id"], args)
            self.on_event({"type": "StasisStart", "channel": chan, "args": args})
        for row in await self.writer.run(call_store.open_calls):
            channel_id = row["channel_id"]
            if channel_id in live or channel_id in self.calls:
                continue  # still talking in the dialplan: its hangup handler will report
            if parse_iso(row["started_at"]) >= listed_at:
                continue  # began after the list was made: followed here
            await self._collect(row)

    async def _collect(self, row: dict) -> None:
        """Finish the row of a call whose channel is gone and left no spool line
        (the daemon imports the call spool before it reconciles)."""
        channel_id = row["channel_id"]
        call = _Call(flow=resume_flow(self.config, row, self.memory), channel_id=channel_id)
        call.call_id, call.start, call.config = row["id"], _start_of(row), self.config
        async with call.lock:
            event = Gone(self.clock(), "channel gone while ctm-pbx was away; no result left")
            await self._apply(call, call.flow.handle(event))
        log.info("call %s (row %s) completed after a restart", channel_id, row["id"])


def waiting_in_app(app: dict, live: dict[str, dict]) -> list[tuple[dict, list[str]]]:
    """The live channels in our Stasis app (``GET /applications/{app}``), each with the
    arguments of its entry (``inbound,…``, ``dialed,…``): the calls that wait for the app."""
    out = []
    for channel_id in app.get("channel_ids") or []:
        chan = live.get(channel_id)
        if chan is not None:
            out.append((chan, (chan.get("dialplan") or {}).get("app_data", "").split(",")[1:]))
    return out


async def hand_over(ari: AriClient) -> list[str]:
    """Send every call waiting in our Stasis app to the dialplan fail-safe; the channels
    sent. For when no ctm-pbx is connected (it died: see ``ctm-pbx asterisk handover``):
    such a call waits in the app until ctm-pbx is back, with nobody deciding for it,
    while a new call's ``Stasis()`` fails over at once. ``[ctm-failsafe]`` rings the
    fail-safe, and the call's row comes from its spool line as for those calls (or its
    end is reported to ctm-pbx, if its hangup handler was pushed before); the daemon's
    reconnection finds it no longer in the app. Entries from a hangup handler
    (``ended``) are left alone: Stasis() returns at once for a hung-up channel."""
    try:
        app = await ari.application()
    except AriError as exc:
        if exc.status != 404:
            raise
        return []  # no such app: nothing waits in it
    live = {c["id"]: c for c in await ari.channels()}
    moved = []
    for chan, args in waiting_in_app(app, live):
        if args[:1] == ["ended"]:
            continue
        try:
            await ari.continue_in_dialplan(chan["id"], FAILSAFE_CONTEXT, "s")
        except AriError as exc:
            if exc.status in (404, 409):  # hung up, or left the app meanwhile
                continue
            raise
        log.info("call %s handed to the fail-safe (entry %r)", chan["id"], args)
        moved.append(chan["id"])
    return moved


def _start_of(row: dict) -> StartCall:
    """A stored call's start, for its log line (no caller: the line names none)."""
    return StartCall(
        started_at=row.get("started_at") or "",
        tracking_number=row.get("tracking_number") or "",
        caller_number=None,
        caller_name=None,
        source=row.get("source"),
        pool=row.get("pool"),
        route=row.get("route"),
    )


def resume_flow(config: Config, row: dict, memory: dict[str, RouteMemory]) -> CallFlow:
    """Rebuild a call's flow from its row and legs."""
    legs = row.get("legs") or []
    step_no = max((leg["step"] for leg in legs), default=0)
    open_legs = [leg for leg in legs if leg["step"] == step_no and leg["result"] is None]
    open_step = None
    open_started = None
    if open_legs:
        rings = tuple(
            Ring(leg["receiving_number"], leg["number"] or "", leg["dial_string"] or "")
            for leg in open_legs
        )
        open_step = Step(open_legs[0]["route"] or "", rings, 0)
        open_started = parse_iso(open_legs[0]["started_at"])
    return CallFlow.resume(
        config,
        memory,
        started=parse_iso(row["started_at"]),
        route=row["route"],
        step_no=step_no,
        open_step=open_step,
        open_step_started=open_started,
        ring_results=[leg["result"] for leg in legs if leg["result"]],
    )


def ended_event(now: datetime, args: list[str]) -> Ended:
    """The hangup handler's ``ended,<CTM_RESULT>`` arguments."""
    return Ended(now, parse_result(args[1:]), _flag(args, 6), _queue_part(args, 7))


def parse_queue(args: list[str]) -> QueueResult:
    """``[QUEUESTATUS, QEHOLDTIME, QEORIGINALPOS, MEMBERNAME]`` from the dialplan."""

    def num(i: int) -> int | None:
        try:
            return int(args[i])
        except (IndexError, ValueError):
            return None

    return QueueResult(
        status=args[0] if args else "",
        wait_seconds=num(1) or 0,
        position=num(2),
        agent=args[3] if len(args) > 3 else "",
    )


def _queue_part(args: list[str], start: int) -> QueueResult | None:
    part = args[start : start + 4]
    return parse_queue(part) if any(part) else None


def _flag(args: list[str], i: int) -> bool:
    return len(args) > i and args[i] == "1"
