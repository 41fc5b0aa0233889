"""The dialplan's call spool: one line per call from ``[ctm-hangup]``, imported into the call log.

Every call that reached ``[ctm-inbound]`` appends a line to ``CTM_SPOOL`` at its
hangup (``Set(FILE(…,,,al,u)=…)``, see dialplan/ctm-pbx.conf), whether or not ctm-pbx
was connected. ctm-pbx renames the file (Asterisk's next line starts a new one),
imports the lines and deletes the renamed file only once the import is committed:

- a call the app never saw (the fail-safe took it while ctm-pbx was away) gets its
  row: ``failsafe = 1``, times, caller, outcome and who answered as Asterisk saw
  them, and the attribution computed now from the leases as they were at the
  call's start (``attributed_late = 1``);
- a call whose row is still open (ctm-pbx was killed before it wrote the end) is
  completed from the line; a call whose row a crash lost gets one;
- a call whose row is complete is skipped: an import interrupted by another crash
  is simply run again, and imports nothing twice (``calls.channel_id`` is unique).

AGI mode's dialplan (dialplan/ctm-pbx-agi.conf) writes the same line (its CTM_RESULT
ends in ``agi``): the import completes an AGI call whose end AMI did not tell (AMI
was away) with what Dial() said, and gives a row to a call ctm-pbx never answered.
While the AGI handler follows a call (``CallSpool.follows``) its line is kept aside
for it: the handler completes the row from its AMI events, or, when they were
missed, from the line (``CallSpool.complete``).

Why a spool written by the dialplan rather than Asterisk's CDR or CEL backends
(cdr_custom, cdr_sqlite3_custom, cel_custom…): the CDR engine follows every channel
and bridge of every call, ours or not, all the time; the spool is one file append
in a hangup handler that every call runs anyway, and its line carries exactly what
the call log needs (the DID, the caller, CTM_RESULT) in the form the app already
parses. Its cost is measured in bench/README.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import sqlite_utils

from ctm_pbx.adapters.ari_calls import ended_event, resume_flow
from ctm_pbx.adapters.call_records import record
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store.db import atomic
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.core.call.actions import StartStep, start_call
from ctm_pbx.core.call.ari_flow import CallFlow
from ctm_pbx.core.clock import iso, parse_iso
from ctm_pbx.core.model import Config, NumberInfo
from ctm_pbx.core.phone import caller_e164, did_e164
from ctm_pbx.core.routing import Ring, Step

log = logging.getLogger(__name__)

VERSION = "v1"
FIELDS = 10  # v1|uniqueid|linkedid|did|caller|name|start|end|spool_only|CTM_RESULT
SETTLE_S = 0.2  # after the rename: a line Asterisk was appending lands in the old file
BATCH = 200  # lines per store job (the writer serves the calls in between)
WORK_SUFFIX = ".work"
REJECTED_SUFFIX = ".rejected"
NOTE_FAILSAFE = "ctm-pbx was not connected: the dialplan fail-safe took the call"
NOTE_REBUILT = "row rebuilt from the call spool: ctm-pbx lost it in a crash"


@dataclass(frozen=True)
class SpoolRecord:
    """One call as the dialplan saw it at its hangup."""

    channel_id: str
    linkedid: str
    did: str
    caller_number: str
    caller_name: str
    started: datetime | None
    ended: datetime
    spool_only: bool  # the app never saw the call
    result: tuple[str, ...]  # CTM_RESULT: DIALSTATUS, DIALEDTIME_MS, …
    line: str = ""  # as written (kept in the .rejected file if its import fails)

    @property
    def failsafe(self) -> bool:
        return self.spool_only or (len(self.result) > 5 and self.result[5] == "1")

    @property
    def mode(self) -> str:
        """``agi`` for AGI mode's hangup handler (CTM_RESULT's 11th field), else ``ari``."""
        return "agi" if len(self.result) > 10 and self.result[10] == "agi" else "ari"

    def dial_started(self) -> datetime | None:
        """When the last Dial() began (the end less DIALEDTIME_MS), if it ran."""
        try:
            dialed_ms = int(self.result[1])
        except (IndexError, ValueError):
            return None
        return self.ended - timedelta(milliseconds=dialed_ms) if dialed_ms > 0 else None


@dataclass
class ImportResult:
    created: int = 0
    completed: int = 0
    skipped: int = 0
    rejected: int = 0
    channels: list[str] = field(default_factory=list)  # created or completed
    failed_lines: list[str] = field(default_factory=list)  # lines whose import raised

    def add(self, other: ImportResult) -> None:
        self.created += other.created
        self.completed += other.completed
        self.skipped += other.skipped
        self.rejected += other.rejected
        self.channels += other.channels
        self.failed_lines += other.failed_lines


def _epoch(text: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def parse_line(line: str) -> SpoolRecord | None:
    """A spool line, or None when it is not one (truncated, another version)."""
    if not line.endswith("\n"):
        return None  # a line Asterisk did not finish writing
    parts = line.rstrip("\r\n").split("|", FIELDS - 1)
    if len(parts) != FIELDS or parts[0] != VERSION or not parts[1]:
        return None
    ended = _epoch(parts[7])
    if ended is None:
        return None
    return SpoolRecord(
        channel_id=parts[1],
        linkedid=parts[2],
        did=parts[3],
        caller_number=unquote(parts[4]),
        caller_name=unquote(parts[5]),
        started=_epoch(parts[6]),
        ended=ended,
        spool_only=parts[8] == "1",
        result=tuple(parts[9].split(",")),
        line=line,
    )


def take_files(spool: Path) -> list[Path]:
    """Rename the live spool aside (if it has lines) and list every file to import.

    Renamed files left by an earlier run (a crash before their import was
    committed) come first, in the order they were taken."""
    if not spool.parent.is_dir():  # fail-safe calls would go unrecorded: say so
        raise FileNotFoundError(f"no folder {spool.parent} (create it, see the README)")
    taken = False
    with contextlib.suppress(FileNotFoundError):
        if spool.stat().st_size > 0:
            spool.rename(spool.with_name(f"{spool.name}.{time.time_ns()}{WORK_SUFFIX}"))
            taken = True
    if taken:
        time.sleep(SETTLE_S)
    files = spool.parent.glob(f"{spool.name}.*{WORK_SUFFIX}")
    return sorted(files, key=lambda p: int(p.name.split(".")[-2] or 0))


def read_files(files: list[Path]) -> tuple[list[SpoolRecord], list[str]]:
    """The records of the files, and the lines that are not records."""
    records, bad = [], []
    for path in files:
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            for line in fh:
                rec = parse_line(line)
                if rec is not None:
                    records.append(rec)
                elif line.strip():
                    bad.append(line)
    return records, bad


def finish_files(spool: Path, files: list[Path], bad: list[str]) -> None:
    """After the commit: keep the lines not imported for the admin (``.rejected``), drop
    the rest."""
    if bad:
        rejected = spool.with_name(spool.name + REJECTED_SUFFIX)
        with open(rejected, "a", encoding="utf-8") as fh:
            fh.writelines(line if line.endswith("\n") else line + "\n" for line in bad)
    for path in files:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# -- the store side (on the writer) ---------------------------------------------------


def import_records(
    db: sqlite_utils.Database, config: Config, records: list[SpoolRecord]
) -> ImportResult:
    """Write what the call log lacks of these calls; each call in its own savepoint."""
    out = ImportResult()
    for rec in records:
        try:
            with atomic(db, "spool"):
                done = _import_one(db, config, rec)
        except Exception:
            log.exception("call %s: spool line not imported", rec.channel_id)
            out.rejected += 1
            out.failed_lines.append(rec.line)
            continue
        if done == "skipped":
            out.skipped += 1
        else:
            setattr(out, done, getattr(out, done) + 1)
            out.channels.append(rec.channel_id)
    return out


def _import_one(db: sqlite_utils.Database, config: Config, rec: SpoolRecord) -> str:
    row = db.conn.execute(
        "SELECT id, status FROM calls WHERE channel_id = ?", (rec.channel_id,)
    ).fetchone()
    ended = ended_event(rec.ended, ["ended", *rec.result])
    if row is not None:
        if row[1] == "completed":
            return "skipped"
        call = call_store.get_call(db, row[0])
        assert call is not None
        flow = resume_flow(config, call, {})
        first: list[StartStep] = []
        if not _has_open_step(flow) and rec.result[0]:
            # no open step, yet Dial() ran: its events were missed (AGI mode while AMI
            # was away). The last step's legs closed 'unknown' (at an adoption) are the
            # line's Dial(); without any, the line's Dial() is a step of its own
            flow = resume_flow(config, _reopened(call), {})
            if not _has_open_step(flow):
                flow, first = _with_line_step(config, call, rec)
        spooled = _Spooled(rec.channel_id, rec.linkedid, row[0])
        record(db, config, spooled, [*first, *flow.handle(ended)], rec.ended, mode=rec.mode)
        return "completed"
    call_id = _create(db, config, rec, ended)
    return "created" if call_id else "skipped"


def _create(db: sqlite_utils.Database, config: Config, rec: SpoolRecord, ended) -> int:  # noqa: ANN001
    country = config.tracking.default_country
    did = did_e164(rec.did, country) or rec.did
    number = db.conn.execute(
        "SELECT source, pool, route FROM tracking_numbers WHERE number = ? AND status = 'active'",
        (did,),
    ).fetchone()
    info = NumberInfo(did, *number) if number else None
    route = info.route if info else None
    caller = caller_e164(rec.caller_number or None, country)
    started = rec.started or rec.ended
    start = start_call(started, did, info, caller, rec.caller_name or None)
    ring = _line_ring(config, rec)
    note = NOTE_FAILSAFE if rec.spool_only else NOTE_REBUILT
    flow = CallFlow.resume(
        config,
        {},
        started=started,
        route=route,
        step_no=1,
        open_step=Step(route or "", (ring,), 0),
        open_step_started=started,
        ring_results=[],
        failsafe_reason=note,
    )
    spooled = _Spooled(rec.channel_id, rec.linkedid)
    first = StartStep(1, route or "", (ring,), iso(started))
    record(db, config, spooled, [start, first, *flow.handle(ended)], started, mode=rec.mode)
    call_id = spooled.call_id
    assert call_id is not None
    db.conn.execute(
        "UPDATE calls SET attributed_late = 1, notes = CASE WHEN notes = '' THEN ?"
        " ELSE notes || '; ' || ? END WHERE id = ?",
        (note, note, call_id),
    )
    return call_id


def _line_ring(config: Config, rec: SpoolRecord) -> Ring:
    """Who the line's Dial() rang: the fail-safe, or the receiving number of
    DIALEDPEERNUMBER."""
    peer = rec.result[4] if len(rec.result) > 4 else ""
    if rec.failsafe:
        return Ring("failsafe", peer, "")
    return _receiving_ring(config, peer) or Ring(peer or "unknown", "", "")


def _has_open_step(flow: CallFlow) -> bool:
    return flow.books is not None and flow.books.current is not None


def _reopened(call: dict) -> dict:
    """The row with its last step's legs open again if all were closed 'unknown'."""
    legs = call.get("legs") or []
    last = max((leg["step"] for leg in legs), default=0)
    mine = [leg for leg in legs if leg["step"] == last]
    if not mine or any(leg["result"] != "unknown" for leg in mine):
        return call
    return {**call, "legs": [{**leg, "result": None} if leg in mine else leg for leg in legs]}


def _with_line_step(
    config: Config, call: dict, rec: SpoolRecord
) -> tuple[CallFlow, list[StartStep]]:
    """The row's flow with the line's Dial() as its open step (after the row's steps)."""
    legs = call.get("legs") or []
    step_no = max((leg["step"] for leg in legs), default=0) + 1
    started = parse_iso(call["started_at"])
    step_started = rec.dial_started() or rec.started or started
    route = call.get("route") or ""
    ring = _line_ring(config, rec)
    flow = CallFlow.resume(
        config,
        {},
        started=started,
        route=call.get("route"),
        step_no=step_no,
        open_step=Step(route, (ring,), 0),
        open_step_started=step_started,
        ring_results=[leg["result"] for leg in legs if leg["result"]],
    )
    return flow, [StartStep(step_no, route, (ring,), iso(step_started))]


def _receiving_ring(config: Config, peer: str) -> Ring | None:
    """The receiving number Dial() connected, from DIALEDPEERNUMBER."""
    for rn in config.receiving_numbers.values():
        if peer and rn.dial_string.split("/", 1)[-1] == peer:
            return Ring(rn.name, rn.number, rn.dial_string)
    return None


@dataclass
class _Spooled:
    """A spooled call, as the recorder sees it."""

    channel_id: str
    linkedid: str | None
    call_id: int | None = None


# -- the daemon side ---------------------------------------------------------------------


class CallSpool:
    """Imports the spool: every second, and before reconciling after a (re)connection."""

    def __init__(self, config: Config, writer: StoreWriter, path: str | None = None) -> None:
        self.config = config
        self.writer = writer
        self.path = Path(path or config.asterisk.call_spool)
        self._lock = asyncio.Lock()
        self._unreadable = False  # warned already: once per outage, not every second
        self.imported = ImportResult()  # since the daemon started (for /healthz)
        # AGI mode: whether the AGI handler follows a call (it completes the row itself);
        # the lines of such calls wait in ``_held`` for the handler (``complete``, ``drop``)
        self.follows: Callable[[str], bool] | None = None
        self._held: dict[str, SpoolRecord] = {}

    async def collect(self) -> ImportResult:
        """Import what the spool holds; the files go only after the commit."""
        async with self._lock:
            try:
                files = await asyncio.to_thread(take_files, self.path)
                records, bad = await asyncio.to_thread(read_files, files)
            except OSError as exc:
                if not self._unreadable:
                    log.warning("call spool %s not readable: %s", self.path, exc)
                self._unreadable = True
                return ImportResult()
            if self._unreadable:
                log.info("call spool %s readable again", self.path)
                self._unreadable = False
            if not files:
                return ImportResult()
            if self.follows is not None:
                follows = self.follows
                for rec in records:
                    if follows(rec.channel_id):
                        self._held[rec.channel_id] = rec
                records = [rec for rec in records if rec.channel_id not in self._held]
            result = ImportResult(rejected=len(bad))
            for i in range(0, len(records), BATCH):
                result.add(
                    await self.writer.run(import_records, self.config, records[i : i + BATCH])
                )
            await asyncio.to_thread(finish_files, self.path, files, bad + result.failed_lines)
            self.imported.add(result)
            self.imported.channels, self.imported.failed_lines = [], []
            if result.created or result.completed or result.rejected:
                log.info(
                    "call spool: %d rows created, %d completed, %d already there, %d rejected",
                    result.created,
                    result.completed,
                    result.skipped,
                    result.rejected,
                )
            return result

    async def complete(self, channel_id: str) -> dict | None:
        """A followed call ended and its handler did not see how (AGI mode, AMI away):
        complete its row from its line, kept aside or still in the spool. The row
        completed now (its id, outcome, ring and talk seconds), or None: no line (the
        handler completes it as it can)."""
        rec = self._held.pop(channel_id, None)
        if rec is not None:
            await self.writer.run(import_records, self.config, [rec])
        else:
            await self.collect()  # the handler no longer follows it: imported, if there
        return await self.writer.run(_completed_row, channel_id)

    def drop(self, channel_id: str) -> None:
        """The handler completed the call itself: its line, if kept aside, is not needed."""
        self._held.pop(channel_id, None)


def _completed_row(db: sqlite_utils.Database, channel_id: str) -> dict | None:
    row = db.conn.execute(
        "SELECT id, outcome, ring_seconds, talk_seconds FROM calls"
        " WHERE channel_id = ? AND status = 'completed'",
        (channel_id,),
    ).fetchone()
    return (
        dict(zip(("id", "outcome", "ring_seconds", "talk_seconds"), row, strict=True))
        if row
        else None
    )
