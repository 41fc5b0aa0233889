"""AGI mode: FastAGI requests from the admin's dialplan, completed from AMI events.

At the top of an inbound route the dialplan calls
``AGI(agi://127.0.0.1:4573/inbound,${EXTEN})`` (see dialplan/ctm-pbx-agi.conf).
For that request ctm-pbx creates the call row, attributes the call, and sets
``CTM_*`` channel variables: the call id, the source, the visitor and the
``Dial()`` steps of the number's route (and clears the absolute timeout that
bounded the request, when the dialplan passes ``disarm`` as the third argument).
The dialplan then dials by itself; ``DialBegin``/``DialEnd``/``Hangup`` events
from AMI complete the row. When AMI was away and the end is not known, the line the
dialplan's hangup handler wrote to the call spool completes it (adapters/call_spool.py).

An answer that would come later than ``asterisk.agi.timeout_ms`` is not sent:
``CTM_STATUS`` is set last, so the dialplan goes on to its default destination.
The answer (one ``EXEC MSet``) is the script's last command (``AgiRequest.finish``):
the request ends with it, so the channel's thread sleeps once per request, not
twice; Asterisk's reply is read afterwards, and anything but 200 marks the call
as gone to the default destination.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

import sqlite_utils
from panoramisk.message import Message

from ctm_pbx.adapters.ami_client import AmiClient
from ctm_pbx.adapters.call_records import record
from ctm_pbx.adapters.fastagi import AgiClosed, AgiHangup, AgiReply, AgiRequest, serve
from ctm_pbx.adapters.finished_calls import FinishedCall, FinishedHook, report_finished
from ctm_pbx.adapters.live_inventory import LiveInventory
from ctm_pbx.adapters.store.writer import StoreUnavailable, StoreWriter
from ctm_pbx.adapters.wall_clock import utcnow
from ctm_pbx.core.call.actions import (
    Action,
    FinishCall,
    Outcome,
    RememberRoute,
    StartCall,
    start_call,
)
from ctm_pbx.core.call.agi_plan import AgiPlan, AgiStatus, channel_variables, plan_agi_call
from ctm_pbx.core.call.agi_tracker import (
    AgiCallTracker,
    ChannelLost,
    DialBegan,
    DialEnded,
    HungUp,
    TrackerEvent,
)
from ctm_pbx.core.clock import iso, parse_iso
from ctm_pbx.core.model import Config
from ctm_pbx.core.phone import caller_e164, did_e164

if TYPE_CHECKING:
    from ctm_pbx.adapters.call_spool import CallSpool

log = logging.getLogger(__name__)

ROUTE = "inbound"  # agi://host:port/inbound
LOST_SIGHT = "AMI was not connected during the call: what happened meanwhile is unknown"


@dataclass
class _AgiCall:
    uniqueid: str
    tracker: AgiCallTracker
    call_id: int | None = None
    linkedid: str | None = None

    @property
    def channel_id(self) -> str:
        return self.uniqueid

    start: StartCall | None = None  # for the finished call's log line
    confidence: float | None = None


def _record_start(
    db: sqlite_utils.Database,
    config: Config,
    call: _AgiCall,
    start: StartCall,
    plan: AgiPlan,
    now: datetime,
) -> tuple[int | None, str | None, float | None]:
    """Create the row, attribute it, remember round robin (on the writer thread)."""
    remember = [RememberRoute(route, memory) for route, memory in plan.memories.items()]
    visitor_id, confidence = record(db, config, call, [start, *remember], now, mode="agi")
    return call.call_id, visitor_id, confidence


def _row_lost(call: _AgiCall, exc: BaseException) -> None:
    """The row will not be written (its commit failed for a reason of its own, or it
    waited for a writable database past the writer's bound): the call goes on,
    unlogged (its id may be given to another call's row, which its events must not
    touch)."""
    log.error("AGI call %s: its row was not committed (%s)", call.uniqueid, exc)
    call.call_id = None


def _record_actions(
    db: sqlite_utils.Database, config: Config, call: _AgiCall, actions: list[Action], now: datetime
) -> None:
    if call.call_id is None:
        log.error("AGI call %s: no row to record its events in", call.uniqueid)
        return
    record(db, config, call, actions, now, mode="agi")


MSET_SPECIAL = ',"()'  # what Asterisk's application argument parser acts on
DISARM = "disarm"  # agi_arg_3: the dialplan armed TIMEOUT(absolute) for the request


def answer_command(variables: list[tuple[str, str]], *, disarm: bool) -> str:
    """The answer: the ``CTM_*`` variables in one ``MSet``, after (``disarm``) clearing
    the absolute timeout the dialplan armed for the request: the call has time now,
    and the dialplan needs no priority of its own to clear it (ctm-pbx-agi.conf)."""
    if disarm:
        variables = [("TIMEOUT(absolute)", "0"), *variables]
    return mset_command(variables)


def mset_command(variables: list[tuple[str, str]]) -> str:
    """One AGI command that sets every variable: ``EXEC MSet "A=1,B=x\\,y"``.

    One round trip instead of one per variable (Asterisk cannot take pipelined AGI
    commands). Values are escaped twice: for MSet's argument list (separators,
    quotes and parentheses, which group) and for the AGI command line.
    """
    args = ",".join(f"{name}={_escape(value, MSET_SPECIAL)}" for name, value in variables)
    return f'EXEC MSet "{_escape(args, chr(34))}"'


def _escape(value: str, special: str) -> str:
    value = value.replace("\\", "\\\\")
    for ch in special:
        value = value.replace(ch, "\\" + ch)
    return value


class AgiCallHandler:
    """Answers FastAGI requests and follows their calls through AMI."""

    def __init__(
        self,
        config: Config,
        writer: StoreWriter,
        inventory: LiveInventory,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.writer = writer
        self.inventory = inventory
        self.clock = clock
        self.calls: dict[str, _AgiCall] = {}
        self.requests = 0
        self.timeouts = 0
        self.calls_finished = 0
        self.on_finished: FinishedHook | None = None  # each finished call (the metrics)
        # each request's seconds from Asterisk's connection to the answer (or giving up)
        self.on_answer: Callable[[float], None] | None = None
        self.ami = AmiClient(
            config.asterisk.ami, self.on_ami_event, self.reconcile, wants=self.calls.__contains__
        )
        self._server: asyncio.Server | None = None
        # the dialplan's call spool: what AMI did not tell of a call's end (``use_spool``)
        self.spool: CallSpool | None = None
        self._from_spool: set[str] = set()  # calls ended, their rows being completed from it
        self._tasks: set[asyncio.Task] = set()

    def use_spool(self, spool: CallSpool) -> None:
        """Complete from the spool the calls whose end AMI did not tell; meanwhile the
        spool keeps the lines of the calls followed here aside."""
        self.spool = spool
        spool.follows = self.calls.__contains__

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        if not self.inventory.loaded:
            await self.inventory.load()
        agi = self.config.asterisk.agi
        self._server = await serve({ROUTE: self.on_request}, agi.host, agi.port)
        self.ami.start()
        log.info("FastAGI on agi://%s:%d/%s", agi.host, agi.port, ROUTE)

    @property
    def listening(self) -> bool:
        """Whether the FastAGI listener accepts connections (for ``/healthz``)."""
        return self._server is not None and self._server.is_serving()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self.ami.close()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- FastAGI -----------------------------------------------------------------

    async def on_request(self, request: AgiRequest) -> None:
        self.requests += 1
        timeout = self.config.asterisk.agi.timeout_ms / 1000
        call: _AgiCall | None = None
        try:
            async with asyncio.timeout(timeout):
                call = await self._inbound(request)
        except TimeoutError:
            self.timeouts += 1
            log.warning(
                "AGI request %s took over %.0f ms: the dialplan goes on without ctm-pbx",
                request.headers.get("agi_uniqueid"),
                timeout * 1000,
            )
            if call is None:
                call = self.calls.get(request.headers.get("agi_uniqueid", ""))
            if call is not None:
                call.tracker.give_up(self.clock(), "ctm-pbx answered too late")
        except (AgiHangup, AgiClosed) as exc:  # the caller left, or Asterisk gave up
            log.info("AGI request %s ended early: %s", request.headers.get("agi_uniqueid"), exc)
            call = self.calls.get(request.headers.get("agi_uniqueid", ""))
            if call is not None:
                call.tracker.give_up(self.clock(), "the AGI request ended before the answer")
        except Exception:
            log.exception("AGI request %s failed", request.headers.get("agi_uniqueid"))
            call = self.calls.get(request.headers.get("agi_uniqueid", ""))
            if call is not None:
                call.tracker.give_up(self.clock(), "ctm-pbx failed to answer")
        finally:
            if self.on_answer is not None:
                self.on_answer(asyncio.get_running_loop().time() - request.started)

    async def _inbound(self, request: AgiRequest) -> _AgiCall:
        h = request.headers
        uniqueid = h["agi_uniqueid"]
        config = self.config  # the request's, whatever a reload does meanwhile
        country = config.tracking.default_country
        raw_did = h.get("agi_arg_1") or h.get("agi_extension", "")
        did = did_e164(raw_did, country) or raw_did
        info = self.inventory.numbers.get(did)
        now = self.clock()
        caller = caller_e164(h.get("agi_callerid"), country)
        start = start_call(now, did, info, caller, _name(h.get("agi_calleridname")))
        memory = self.inventory.memory
        plan = plan_agi_call(config, info, did, memory, now=now, where=start.location)
        memory.update(plan.memories)
        start = replace(start, route=plan.route)  # the route the plan took
        call = self.calls[uniqueid] = _AgiCall(uniqueid, AgiCallTracker(plan, now), start=start)
        if not self.ami.connected.is_set():  # its dial events go nowhere for now
            call.tracker.lose_sight(LOST_SIGHT)
        linkedid = h.get("agi_arg_2")  # ctm-pbx-agi.conf passes it; other dialplans may not
        if not linkedid:
            try:
                linked = await request.send_command("GET FULL VARIABLE ${CHANNEL(linkedid)}")
            except (AgiHangup, AgiClosed):  # the caller left: the row is still written
                linked = None
            linkedid = (_agi_value(linked) if linked else None) or uniqueid
        call.linkedid = linkedid
        try:
            call_id, visitor_id, confidence = await self.writer.run(
                _record_start,
                config,
                call,
                start,
                plan,
                now,
                on_loop=True,
                on_lost=partial(_row_lost, call),
            )
        except StoreUnavailable as exc:
            # the database cannot be written (a full disk): the call is routed all the
            # same; its row waits in the writer (exc.kept) and is written, and the call
            # attributed, when it can be, with the events that followed
            log.warning("AGI call %s: routed without its row for now (%s)", uniqueid, exc)
            if not exc.kept:
                call.call_id = None
            call_id, visitor_id, confidence = None, None, None
        except Exception:
            call.call_id = None  # its row did not stand: SQLite may give the id to another
            raise
        call.confidence = confidence
        source = config.sources.get(start.source or "")
        variables = channel_variables(
            plan,
            call_id=call_id,
            source=start.source,
            source_label=source.label if source else "",
            visitor_id=visitor_id,
            confidence=confidence,
        )
        loop = asyncio.get_running_loop()
        if loop.time() - request.started > config.asterisk.agi.timeout_ms / 1000:
            raise TimeoutError  # the work ran on the loop past the deadline: no late answer
        # the last command: the AGI ends with it (see AgiRequest.finish); Asterisk's reply
        # is read after the request ends
        reply = request.finish(answer_command(variables, disarm=h.get("agi_arg_3") == DISARM))
        reply.add_done_callback(partial(self._answer_taken, call))
        if plan.status != AgiStatus.OK:
            log.info("AGI call %s: %s; default destination", uniqueid, plan.reason)
        return call

    def _answer_taken(self, call: _AgiCall, reply: asyncio.Future[AgiReply]) -> None:
        """Asterisk's reply to the ``CTM_*`` variables: anything but 200 means the
        dialplan went on without them (it hung up, timed out, or refused the command)."""
        if reply.cancelled():
            return
        exc = reply.exception()
        if exc is None and reply.result().ok:
            return
        why = f"{type(exc).__name__}: {exc}" if exc else reply.result().line
        log.warning("AGI call %s: the variables were not taken (%s)", call.uniqueid, why)
        call.tracker.give_up(self.clock(), "the dialplan did not take ctm-pbx's answer")

    # -- health ------------------------------------------------------------------

    def status(self) -> dict:
        """AGI mode's part of the daemon's status (``/healthz``)."""
        return {
            "ami_connected": self.ami.connected.is_set(),
            "ami_events": self.ami.events_received,
            "agi_requests": self.requests,
            "agi_timeouts": self.timeouts,
            "agi_calls_in_progress": len(self.calls),
            "agi_calls_finished": self.calls_finished,
        }

    def components(self) -> dict:
        """AGI mode's parts for ``/healthz``, each with ``ok``: AMI and the FastAGI server."""
        ami = self.ami.connected.is_set()
        return {
            "ami": {"ok": ami, "connected": ami},
            "fastagi": {"ok": self.listening, "listening": self.listening},
        }

    # -- AMI ---------------------------------------------------------------------

    def on_ami_event(self, msg: Message) -> None:
        uniqueid = msg.get("Uniqueid")
        call = self.calls.get(uniqueid or "")
        if call is None:
            return
        now = _timestamp(msg.get("Timestamp")) or self.clock()
        name = msg.get("Event")
        event: TrackerEvent
        if name == "DialBegin":
            dest = msg.get("DestUniqueid", "")
            event = DialBegan(now, dest, msg.get("DestChannel", ""), msg.get("DialString", ""))
        elif name == "DialEnd":
            event = DialEnded(now, msg.get("DestUniqueid", ""), msg.get("DialStatus", ""))
        elif name == "Hangup":
            event = HungUp(now, _int(msg.get("Cause")))
        else:
            return
        self._apply(call, call.tracker.handle(event))

    def _apply(self, call: _AgiCall, actions: list[Action]) -> None:
        fin = next((a for a in actions if isinstance(a, FinishCall)), None)
        if fin is not None and self.spool is not None:
            if fin.outcome is Outcome.UNKNOWN:  # AMI missed how it ended: the spool knows
                self.calls.pop(call.uniqueid, None)
                self._from_spool.add(call.uniqueid)
                task = asyncio.create_task(self._end_from_spool(call, actions, self.spool))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                return
            self.spool.drop(call.uniqueid)
        self._record(call, actions)

    async def _end_from_spool(
        self, call: _AgiCall, actions: list[Action], spool: CallSpool
    ) -> None:
        """The row completed from the call's spool line; without one, as the tracker
        saw it ('unknown')."""
        try:
            row = await spool.complete(call.uniqueid)
            if row is not None:
                self.calls_finished += 1
                log.info("AGI call %s: completed from the call spool", call.uniqueid)
                start = call.start
                summary = FinishedCall(
                    id=row["id"],
                    mode="agi",
                    did=start.tracking_number if start else None,
                    source=start.source if start else None,
                    route=(start.route if start else None) or call.tracker.plan.route,
                    outcome=row["outcome"],
                    ring_s=round(row["ring_seconds"] or 0.0, 3),
                    talk_s=round(row["talk_seconds"] or 0.0, 3),
                    confidence=call.confidence,
                )
                report_finished(summary, self.on_finished)
                return
        except Exception:
            log.exception("AGI call %s: call spool not read", call.uniqueid)
        finally:
            self._from_spool.discard(call.uniqueid)
        self._record(call, actions)

    def _record(self, call: _AgiCall, actions: list[Action]) -> None:
        if actions:
            self.writer.defer(
                _record_actions,
                self.config,
                call,
                actions,
                self.clock(),
                what=f"AGI call {call.uniqueid}",
            )
        if call.tracker.done:
            self.calls.pop(call.uniqueid, None)
            self.calls_finished += 1
        for fin in (a for a in actions if isinstance(a, FinishCall)):
            route = call.tracker.plan.route if call.start is None else None
            summary = FinishedCall.of("agi", call.call_id, call.start, fin, call.confidence, route)
            report_finished(summary, self.on_finished)

    async def reconcile(self) -> None:
        """After an AMI (re)connect: finish rows whose channels vanished unseen."""
        if self.spool is not None:
            try:  # the spool first: what it holds of a call beats "unknown"
                await self.spool.collect()
            except Exception:
                log.exception("call spool import failed")
        known = set(self.calls)  # a call that starts while Asterisk lists is not in the list
        try:
            live = await self.ami.live_channels()
        except Exception as exc:
            log.warning("AGI reconcile skipped: %s", exc)
            return
        if live is None:
            return
        now = self.clock()
        for uniqueid, call in list(self.calls.items()):
            if uniqueid not in known:
                continue
            if uniqueid not in live:
                self._apply(call, call.tracker.handle(ChannelLost(now, "channel gone unseen")))
            else:  # its dial events meanwhile went nowhere: an answer may have been missed
                call.tracker.lose_sight(LOST_SIGHT)
        for row in await self.writer.run(_open_agi_calls):
            uniqueid = row["channel_id"]
            if uniqueid in self.calls or uniqueid in self._from_spool:
                continue  # followed, or ended meanwhile (its row is being completed)
            started = parse_iso(row["started_at"])
            tracker = AgiCallTracker(AgiPlan(AgiStatus.OK), started, adopted=True)
            call = _AgiCall(uniqueid, tracker, row["id"])
            self.writer.defer(_close_open_legs, row["id"], iso(now), on_loop=False)
            if uniqueid in live:
                self.calls[uniqueid] = call  # adopt it: its hangup will complete the row
                log.info("AGI call %s (row %s) adopted after a restart", uniqueid, row["id"])
                continue
            reason = "channel gone while ctm-pbx was away"
            self._apply(call, call.tracker.handle(ChannelLost(now, reason)))
            log.info("AGI call %s (row %s) completed after a restart", uniqueid, row["id"])


def _open_agi_calls(db: sqlite_utils.Database) -> list[dict]:
    return [
        dict(zip(("id", "channel_id", "started_at"), r, strict=True))
        for r in db.execute(
            "SELECT id, channel_id, started_at FROM calls"
            " WHERE status = 'in_progress' AND mode = 'agi' ORDER BY id"
        ).fetchall()
    ]


def _close_open_legs(db: sqlite_utils.Database, call_id: int, ended_at: str) -> None:
    db.execute(
        "UPDATE call_legs SET ended_at = ?, result = 'unknown'"
        " WHERE call_id = ? AND result IS NULL",
        [ended_at, call_id],
    )


def _agi_value(reply: AgiReply) -> str | None:
    """The ``(value)`` of ``200 result=1 (value)``."""
    return reply.value if reply.ok and reply.result == "1" and reply.value else None


def _name(raw: str | None) -> str | None:
    return None if not raw or raw == "unknown" else raw


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


def _timestamp(text: str | None) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(text), UTC) if text else None
    except ValueError:
        return None
