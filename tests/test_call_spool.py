"""The dialplan's call spool imported into the call log (adapters/call_spool.py).

Real files and a real SQLite database: the lines are what [ctm-hangup] appends
(dialplan/ctm-pbx.conf), the rows what the call log keeps.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ctm_pbx.adapters.call_spool import (
    CallSpool,
    finish_files,
    import_records,
    parse_line,
    read_files,
    take_files,
)
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store import leases as lease_store
from ctm_pbx.adapters.store import numbers as number_store
from ctm_pbx.adapters.store import visitors as visitor_store
from ctm_pbx.adapters.store.schema import migrate
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.core.call.actions import StartCall, StartStep
from ctm_pbx.core.inventory import NumberRecord
from ctm_pbx.core.routing import Ring
from tests.helpers import config

POOL_CFG = """\
targets:
  sales: "+13125550100"
pools:
  web: {source: google-ads, target: sales}
"""
OFFSITE = "+13125550142"
POOLED = "+13125550150"
T0 = datetime(2026, 11, 28, 15, 0, 0, tzinfo=UTC)


def line(
    uid: str,
    did: str = OFFSITE[1:],
    *,
    start: datetime = T0,
    talk_s: int = 3,
    status: str = "ANSWER",
    peer: str = "failsafe",
    spool_only: bool = True,
    caller: str = "%2B13125550177",
    name: str = "Jane%20Doe%7Cx",
    agi: bool = False,
) -> str:
    """``agi``: as AGI mode's [ctm-agi-hangup] writes it (dialplan/ctm-pbx-agi.conf)."""
    end = start + timedelta(seconds=talk_s + 1)
    answered = talk_s * 1000 if status == "ANSWER" else 0
    failsafe = "1" if spool_only or peer == "failsafe" else ""
    result = f"{status},{(talk_s + 1) * 1000},{answered},16,{peer},{failsafe},,,,"
    if agi:
        result += ",agi"
    return (
        f"v1|{uid}|{uid}|{did}|{caller}|{name}|{start.timestamp():.3f}|{end.timestamp():.3f}"
        f"|{'1' if spool_only else ''}|{result}\n"
    )


@pytest.fixture
def writer(tmp_path: Path):
    w = StoreWriter(str(tmp_path / "ctm.db"))
    w.run_sync(migrate)
    w.run_sync(
        number_store.add_numbers,
        [
            NumberRecord(OFFSITE, "billboard", None, "one"),
            NumberRecord(POOLED, "google-ads", "web", "one"),
        ],
        now="2026-11-28T00:00:00.000Z",
    )
    yield w
    w.close()


@pytest.fixture
def cfg():
    return config(POOL_CFG)


def rows(writer: StoreWriter) -> list[dict]:
    return writer.run_sync(call_store.list_calls, limit=1000)


def test_a_line_parses_into_what_asterisk_saw() -> None:
    rec = parse_line(line("1733.1"))
    assert rec is not None
    assert (rec.channel_id, rec.did, rec.caller_number, rec.caller_name) == (
        "1733.1",
        OFFSITE[1:],
        "+13125550177",
        "Jane Doe|x",
    )
    assert rec.started == T0 and rec.ended == T0 + timedelta(seconds=4)
    assert rec.spool_only and rec.failsafe
    assert rec.result[:5] == ("ANSWER", "4000", "3000", "16", "failsafe")


@pytest.mark.parametrize(
    "text",
    [
        line("1733.1").rstrip("\n"),  # Asterisk had not finished writing it
        line("1733.1").replace("v1|", "v9|"),
        "v1|1733.1|only a few fields\n",
        line("1733.1").replace(f"{(T0 + timedelta(seconds=4)).timestamp():.3f}", "soon"),
    ],
)
def test_what_is_not_a_whole_line_is_not_a_record(text: str) -> None:
    assert parse_line(text) is None


def test_a_failsafe_call_gets_a_row_attributed_late_from_the_lease_at_its_start(
    writer: StoreWriter, cfg
) -> None:
    def lease(db) -> None:  # noqa: ANN001
        held = T0 - timedelta(minutes=5)
        visitor_store.upsert_visitor(db, "v1", now=held, source="google-ads", visit_id="visit-1")
        visitor_store.insert_visit(
            db, "visit-1", "v1", now=held, source="google-ads", click_ids={"gclid": "abc"}
        )
        lease_store.insert_lease(
            db,
            number=POOLED,
            pool="web",
            visitor_id="v1",
            visit_id="visit-1",
            now=held,
            expires_at=T0 + timedelta(minutes=25),
        )

    writer.run_sync(lease)
    rec = parse_line(line("1733.2", POOLED[1:]))
    got = writer.run_sync(import_records, cfg, [rec])
    assert (got.created, got.completed, got.skipped) == (1, 0, 0)
    row = writer.run_sync(call_store.call_by_channel, "1733.2")
    assert row["failsafe"] == 1 and row["attributed_late"] == 1
    assert (row["status"], row["outcome"], row["answered_by"]) == (
        "completed",
        "answered",
        "failsafe",
    )
    assert (row["tracking_number"], row["source"], row["pool"]) == (POOLED, "google-ads", "web")
    assert (row["caller_number"], row["caller_name"]) == ("+13125550177", "Jane Doe|x")
    assert row["started_at"] == "2026-11-28T15:00:00.000Z"
    assert row["talk_seconds"] == 3.0
    assert (row["visitor_id"], row["visit_id"]) == ("v1", "visit-1")
    assert row["attribution_confidence"] > 0.5 and row["click_ids"] == {"gclid": "abc"}
    assert [leg["receiving_number"] for leg in row["legs"]] == ["failsafe"]
    assert "fail-safe" in row["notes"]


def test_an_unanswered_failsafe_call_keeps_its_outcome(writer: StoreWriter, cfg) -> None:
    recs = [
        parse_line(line("1733.3", talk_s=0, status="BUSY")),
        parse_line(line("1733.4", talk_s=0, status="CANCEL")),
    ]
    writer.run_sync(import_records, cfg, recs)
    busy = writer.run_sync(call_store.call_by_channel, "1733.3")
    gone = writer.run_sync(call_store.call_by_channel, "1733.4")
    assert (busy["outcome"], busy["source"], busy["attribution_confidence"]) == (
        "busy",
        "billboard",
        1.0,
    )
    assert gone["outcome"] == "abandoned"


def test_an_open_row_is_completed_and_a_complete_one_left_alone(writer: StoreWriter, cfg) -> None:
    def open_row(db) -> int:  # noqa: ANN001
        start = StartCall(
            "2026-11-28T15:00:00.000Z", OFFSITE, "+13125550177", None, "billboard", None, "one"
        )
        call_id = call_store.insert_call(db, start, channel_id="1733.5", linkedid="1733.5")
        ring = Ring("desk-1", "+13125550101", "PJSIP/phone1")
        call_store.insert_step(db, call_id, StartStep(1, "one", (ring,), start.started_at))
        return call_id

    writer.run_sync(open_row)
    rec = parse_line(line("1733.5", peer="phone1", spool_only=False))
    first = writer.run_sync(import_records, cfg, [rec])
    again = writer.run_sync(import_records, cfg, [rec])
    assert (first.completed, again.skipped) == (1, 1)
    row = writer.run_sync(call_store.call_by_channel, "1733.5")
    assert (row["outcome"], row["answered_by"], row["failsafe"], row["attributed_late"]) == (
        "answered",
        "desk-1",
        0,
        0,
    )
    assert len(rows(writer)) == 1


def test_a_row_a_crash_lost_is_rebuilt_with_who_answered(writer: StoreWriter, cfg) -> None:
    rec = parse_line(line("1733.6", peer="phone2", spool_only=False))
    writer.run_sync(import_records, cfg, [rec])
    row = writer.run_sync(call_store.call_by_channel, "1733.6")
    assert (row["outcome"], row["answered_by"], row["answered_number"]) == (
        "answered",
        "desk-2",
        "+13125550102",
    )
    assert row["failsafe"] == 0 and row["attributed_late"] == 1 and row["route"] == "one"


def test_an_import_interrupted_after_its_commit_imports_nothing_twice(
    tmp_path: Path, writer: StoreWriter, cfg
) -> None:
    spool = tmp_path / "calls.spool"
    spool.write_text("".join(line(f"1733.{i}") for i in range(10, 20)) + "garbage\n")
    files = take_files(spool)
    records, bad = read_files(files)
    assert len(records) == 10 and bad == ["garbage\n"]
    writer.run_sync(import_records, cfg, records)
    # killed here: committed, files not yet deleted; the next daemon starts over
    spool.write_text(line("1733.20"))  # a call of the outage meanwhile
    got = asyncio.run(CallSpool(cfg, writer, str(spool)).collect())
    assert (got.created, got.skipped) == (1, 10)
    assert sorted(r["channel_id"] for r in rows(writer)) == sorted(
        f"1733.{i}" for i in range(10, 21)
    )
    assert sorted(p.name for p in tmp_path.glob("calls.spool*")) == ["calls.spool.rejected"]
    finish_files(spool, [], [])  # nothing left to do: still no error


def test_a_missing_folder_is_said_once_and_an_empty_spool_is_nothing_to_do(
    tmp_path: Path, writer: StoreWriter, cfg, caplog
) -> None:
    spool = CallSpool(cfg, writer, str(tmp_path / "none" / "calls.spool"))
    with caplog.at_level(logging.WARNING):
        assert asyncio.run(spool.collect()).created == 0
        assert asyncio.run(spool.collect()).created == 0
    assert [r.getMessage() for r in caplog.records if "no folder" in r.getMessage()] != []
    assert len(caplog.records) == 1, "once, not every second"
    (tmp_path / "calls.spool").write_text("")
    assert take_files(tmp_path / "calls.spool") == []


def test_a_line_whose_import_fails_is_kept_for_the_admin(
    tmp_path: Path, writer: StoreWriter, cfg
) -> None:
    def refuse(db) -> None:  # noqa: ANN001 - a store that refuses one call's row
        db.conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON calls WHEN NEW.channel_id = '1733.31'"
            " BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )

    writer.run_sync(refuse)
    spool = tmp_path / "calls.spool"
    spool.write_text(line("1733.30") + line("1733.31"))
    got = asyncio.run(CallSpool(cfg, writer, str(spool)).collect())
    assert (got.created, got.rejected) == (1, 1)
    assert [r["channel_id"] for r in rows(writer)] == ["1733.30"]
    assert (tmp_path / "calls.spool.rejected").read_text() == line("1733.31")


def _agi_row(db, channel: str, legs: str) -> int:  # noqa: ANN001
    """An AGI call's open row as the AGI handler leaves it when AMI's events were missed:
    ``legs`` "none" (its Dial() unseen) or "unknown" (closed at an adoption)."""
    start = StartCall(
        "2026-11-28T15:00:00.000Z", OFFSITE, "+13125550177", None, "billboard", None, "one"
    )
    call_id = call_store.insert_call(db, start, channel_id=channel, linkedid=channel, mode="agi")
    if legs == "unknown":
        ring = Ring("desk-1", "+13125550101", "PJSIP/phone1")
        call_store.insert_step(db, call_id, StartStep(1, "one", (ring,), start.started_at))
        db.execute("UPDATE call_legs SET result = 'unknown', ended_at = ? WHERE call_id = ?",
                   [start.started_at, call_id])  # fmt: skip
    return call_id


@pytest.mark.parametrize("legs", ["none", "unknown"])
def test_an_agi_call_whose_end_ami_missed_is_completed_from_its_line(
    writer: StoreWriter, cfg, legs: str
) -> None:
    writer.run_sync(_agi_row, "1733.30", legs)
    rec = parse_line(line("1733.30", peer="phone1", spool_only=False, agi=True))
    assert rec is not None and rec.mode == "agi"
    got = writer.run_sync(import_records, cfg, [rec])
    assert got.completed == 1
    row = writer.run_sync(call_store.call_by_channel, "1733.30")
    assert (row["status"], row["outcome"], row["answered_by"], row["mode"]) == (
        "completed",
        "answered",
        "desk-1",
        "agi",
    )
    assert row["talk_seconds"] == 3 and row["failsafe"] == 0
    assert [(leg["step"], leg["receiving_number"], leg["result"]) for leg in row["legs"]] == [
        (1, "desk-1", "answered")
    ]


def test_an_agi_call_ctm_pbx_never_answered_gets_an_agi_row(writer: StoreWriter, cfg) -> None:
    rec = parse_line(line("1733.31", agi=True))  # AGI() failed: the default destination
    writer.run_sync(import_records, cfg, [rec])
    row = writer.run_sync(call_store.call_by_channel, "1733.31")
    assert (row["mode"], row["failsafe"], row["answered_by"]) == ("agi", 1, "failsafe")


def test_a_followed_calls_line_waits_for_its_handler(tmp_path: Path, writer, cfg) -> None:  # noqa: ANN001
    """AGI mode: the handler completes the calls it follows; their lines wait aside, and
    complete the row only when the handler asks (its AMI events were missed)."""
    writer.run_sync(_agi_row, "1733.32", "none")
    writer.run_sync(_agi_row, "1733.33", "none")
    spool_path = tmp_path / "calls.spool"
    spool_path.write_text(
        line("1733.32", peer="phone1", spool_only=False, agi=True)
        + line("1733.33", peer="phone1", spool_only=False, agi=True)
    )
    spool = CallSpool(cfg, writer, str(spool_path))
    followed = {"1733.32", "1733.33"}
    spool.follows = followed.__contains__

    async def run() -> tuple[bool, bool]:
        async def completed(channel: str) -> bool:
            return await spool.complete(channel) is not None

        got = await spool.collect()
        assert (got.created, got.completed, got.skipped) == (0, 0, 0)
        spool.drop("1733.33")  # its handler completed it from AMI's events
        followed.clear()
        return await completed("1733.32"), await completed("1733.33")

    assert asyncio.run(run()) == (True, False)
    statuses = {r["channel_id"]: r["status"] for r in rows(writer)}
    assert statuses == {"1733.32": "completed", "1733.33": "in_progress"}
    assert list(tmp_path.glob("calls.spool*")) == []
