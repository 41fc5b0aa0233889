"""The FastAGI side of AGI mode, against an in-process fake of Asterisk's AGI client.

The fake connects like Asterisk's ``AGI(agi://...)`` does, sends the ``agi_*``
environment and answers each command. AMI events are fed to the handler as
panoramisk hands them over (header mappings). The real Asterisk runs these flows
in tests/integration/test_agi_mode.py.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from ctm_pbx.adapters import agi_calls
from ctm_pbx.adapters.agi_calls import AgiCallHandler, mset_command
from ctm_pbx.adapters.live_inventory import LiveInventory
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store import numbers as number_store
from ctm_pbx.adapters.store.schema import migrate
from ctm_pbx.adapters.store.writer import DEFER_S, StoreWriter
from ctm_pbx.core.inventory import NumberRecord
from tests.helpers import config

DID = "+13125550142"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def split_unescaped(text: str, sep: str | None) -> list[str]:
    """Split like Asterisk: a backslash escapes the next character (and is dropped),
    double quotes group (and are dropped), parentheses group (and are kept);
    ``sep=None`` only unescapes (AGI's command line)."""
    parts, cur, quoted, depth, i = [], [], False, 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif sep is not None and ch in "()":
            depth += 1 if ch == "(" else -1 if depth else 0
            cur.append(ch)
        elif sep is not None and ch == sep and not quoted and not depth:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def parse_mset(agi_args: str) -> dict[str, str]:
    """What Asterisk sets for ``EXEC MSet <agi_args>``: AGI's argument parsing, then MSet's."""
    (data,) = split_unescaped(agi_args, None)
    return dict(item.split("=", 1) for item in split_unescaped(data, ","))


@dataclass
class AgiResult:
    variables: dict[str, str]
    commands: list[str]


async def agi_request(
    port: int,
    uniqueid: str,
    did: str,
    extra: str = "",
    mset_answer: bytes = b"200 result=0\n",
    get_answer: bytes = b"200 result=1 (linked-1)\n",
) -> AgiResult:
    """What Asterisk does for ``AGI(agi://127.0.0.1:port/inbound,did)``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    env = (
        "agi_network: yes\nagi_network_script: inbound\nagi_request: agi://127.0.0.1/inbound\n"
        f"agi_channel: PJSIP/carrier-00000001\nagi_uniqueid: {uniqueid}\n"
        "agi_callerid: +13125550100\nagi_calleridname: Jane Caller\n"
        f"agi_extension: {did.lstrip('+')}\nagi_arg_1: {did.lstrip('+')}\n{extra}\n"
    )
    writer.write(env.encode())
    variables: dict[str, str] = {}
    commands: list[str] = []
    while True:
        try:  # Asterisk's answer to a last command may meet a closed socket: a reset
            line = (await reader.readline()).decode().strip()
        except ConnectionResetError:
            break
        if not line:
            break
        commands.append(line)
        if line.startswith("GET FULL VARIABLE"):
            writer.write(get_answer)
        elif line.startswith("EXEC MSet "):
            variables.update(parse_mset(line[len("EXEC MSet ") :]))
            writer.write(mset_answer)
        else:
            writer.write(b"510 Invalid or unknown command\n")
    writer.close()
    return AgiResult(variables, commands)


@dataclass
class Rig:
    handler: AgiCallHandler
    writer: StoreWriter
    port: int

    def row(self, uniqueid: str) -> dict | None:
        return self.writer.run_sync(call_store.call_by_channel, uniqueid)


@pytest.fixture
async def rig(tmp_path) -> AsyncIterator[Rig]:
    port = free_port()
    cfg = config(
        f"""\
asterisk:
  mode: agi
  agi: {{port: {port}, timeout_ms: 300}}
  ami: {{port: {free_port()}}}
"""
    )
    writer = StoreWriter(str(tmp_path / "ctm.db"))
    writer.run_sync(migrate)
    writer.run_sync(
        number_store.add_numbers,
        [NumberRecord(DID, "billboard", None, "seq")],
        now="2026-11-28T00:00:00.000Z",
    )
    handler = AgiCallHandler(cfg, writer, LiveInventory(writer))
    await handler.start()
    yield Rig(handler, writer, port)
    await handler.close()
    writer.close()


def ami(event: str, uniqueid: str, **headers: str) -> dict:
    return {"Event": event, "Uniqueid": uniqueid, "Timestamp": f"{time.time():.6f}", **headers}


async def test_request_creates_the_row_and_sets_the_dial_steps(rig: Rig) -> None:
    result = await agi_request(rig.port, "u-1", DID)
    assert result.variables["CTM_STATUS"] == "ok"
    assert result.variables["CTM_SOURCE"] == "billboard"
    assert result.variables["CTM_DIAL_STEPS"] == "2"
    assert result.variables["CTM_DIAL_1"] == "PJSIP/phone1,5"
    assert result.variables["CTM_DIAL_END"] == "busy"
    assert list(result.variables)[-1] == "CTM_STATUS", "set last: a partial answer is no answer"
    row = rig.row("u-1")
    assert row is not None and str(row["id"]) == result.variables["CTM_CALL_ID"]
    assert (row["mode"], row["status"], row["linkedid"]) == ("agi", "in_progress", "linked-1")
    assert (row["caller_number"], row["caller_name"]) == ("+13125550100", "Jane Caller")
    assert row["attribution_confidence"] == 1.0, "off-site source: certain"


async def test_the_answer_disarms_the_timeout_only_when_the_dialplan_asks(rig: Rig) -> None:
    """ctm-pbx-agi.conf arms TIMEOUT(absolute) around the request and passes ``disarm``: the
    answer clears it first. A dialplan that does not ask keeps whatever timeout it set."""
    asked = await agi_request(rig.port, "u-1", DID, extra="agi_arg_2: u-1\nagi_arg_3: disarm\n")
    assert list(asked.variables)[0] == "TIMEOUT(absolute)"
    assert asked.variables["TIMEOUT(absolute)"] == "0"
    assert list(asked.variables)[-1] == "CTM_STATUS"
    not_asked = await agi_request(rig.port, "u-2", DID, extra="agi_arg_2: u-2\n")
    assert "TIMEOUT(absolute)" not in not_asked.variables
    assert not_asked.variables["CTM_STATUS"] == "ok"


async def test_ami_events_complete_the_row(rig: Rig) -> None:
    await agi_request(rig.port, "u-2", DID)
    dest = {"DestUniqueid": "d-1", "DestChannel": "PJSIP/phone1-00000002"}
    for msg in (
        ami("DialBegin", "u-2", DialString="phone1", **dest),
        ami("DialEnd", "u-2", DialStatus="BUSY", **dest),
        ami("Hangup", "d-1", Cause="17"),  # the phone's channel: not ours to track
        ami(
            "DialBegin",
            "u-2",
            DialString="phone2",
            DestUniqueid="d-2",
            DestChannel="PJSIP/phone2-3",
        ),
        ami("DialEnd", "u-2", DialStatus="ANSWER", DestUniqueid="d-2"),
        ami("Hangup", "u-2", Cause="16"),
        ami("Hangup", "u-unrelated", Cause="16"),
    ):
        rig.handler.on_ami_event(msg)
    row = rig.writer.run_sync(call_store.call_by_channel, "u-2")
    assert row["status"] == "completed" and row["outcome"] == "answered"
    assert row["answered_by"] == "desk-2" and row["hangup_cause"] == 16
    assert [(leg["receiving_number"], leg["result"]) for leg in row["legs"]] == [
        ("desk-1", "busy"),
        ("desk-2", "answered"),
    ]
    assert rig.handler.calls == {} and rig.handler.calls_finished == 1


async def test_unknown_number_tells_the_dialplan_to_use_its_default(rig: Rig) -> None:
    result = await agi_request(rig.port, "u-3", "+13125550999")
    assert result.variables["CTM_STATUS"] == "unknown_number"
    assert result.variables["CTM_DIAL_STEPS"] == "0"
    assert rig.row("u-3")["tracking_number"] == "+13125550999", "still logged"


async def test_slow_store_no_answer_after_the_timeout(rig: Rig, tmp_path) -> None:
    # another process (the CLI, say) holds the write lock past timeout_ms (300)
    other = sqlite3.connect(tmp_path / "ctm.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    release = asyncio.get_running_loop().call_later(0.6, other.execute, "COMMIT")
    t0 = time.monotonic()
    try:
        result = await agi_request(rig.port, "u-4", DID)
        assert time.monotonic() - t0 < 0.55, "the request is closed at the timeout"
    finally:
        release.cancel()
        other.execute("COMMIT")
        other.close()
    assert "CTM_STATUS" not in result.variables
    assert rig.handler.timeouts == 1
    assert rig.handler.calls["u-4"].tracker.failsafe
    # the row is written once the lock is free, and the call's events complete it
    for msg in (ami("Hangup", "u-4", Cause="16"),):
        rig.handler.on_ami_event(msg)
    row = await rig.writer.run(call_store.call_by_channel, "u-4")
    assert row["status"] == "completed" and row["failsafe"]


async def test_request_writes_its_row_on_the_loop_when_the_store_is_idle(
    rig: Rig, monkeypatch
) -> None:
    threads: list[str] = []
    original = agi_calls._record_start

    def record(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(agi_calls, "_record_start", record)
    result = await agi_request(rig.port, "u-6", DID)
    assert result.variables["CTM_STATUS"] == "ok"
    assert threads == [threading.current_thread().name], "no hop to the writer's thread"


async def test_malformed_request_is_closed_without_a_row(rig: Rig) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
    writer.write(b"agi_network_script: inbound\nnonsense\n\n")  # no agi_uniqueid
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
    result = await agi_request(rig.port, "u-5", DID)  # and the server still serves
    assert result.variables["CTM_STATUS"] == "ok"
    assert rig.handler.requests == 2


@pytest.mark.parametrize(
    "value",
    [
        "PJSIP/phone1&PJSIP/phone2,20",
        'Jo "the caller", Inc.',
        "a\\b\\,c",
        "x=y=z",
        "",
        "ünïcode",
        "x(",  # an open parenthesis would swallow the next separator
        'a(b,c)d"e',
    ],
)
def test_mset_command_round_trips_any_value(value: str) -> None:
    command = mset_command([("CTM_A", value), ("CTM_B", "after")])
    assert command.startswith('EXEC MSet "') and "\n" not in command
    assert parse_mset(command[len("EXEC MSet ") :]) == {"CTM_A": value, "CTM_B": "after"}


async def test_work_past_the_deadline_sends_no_late_answer(rig: Rig, monkeypatch) -> None:
    # the request's work after its last await runs on the loop: asyncio.timeout cannot
    # interrupt it, and nothing awaits before the answer
    variables = agi_calls.channel_variables

    def slow_variables(*args, **kwargs):
        time.sleep(0.4)  # timeout_ms is 300
        return variables(*args, **kwargs)

    monkeypatch.setattr(agi_calls, "channel_variables", slow_variables)
    result = await agi_request(rig.port, "u-7", DID)
    assert "CTM_STATUS" not in result.variables, "Asterisk may have gone on by now"
    assert rig.handler.timeouts == 1
    assert rig.handler.calls["u-7"].tracker.failsafe


async def test_variables_refused_by_asterisk_mark_the_call_failsafe(rig: Rig) -> None:
    refused = b"510 Invalid or unknown command\n"
    result = await agi_request(rig.port, "u-8", DID, mset_answer=refused)
    assert result.variables["CTM_STATUS"] == "ok"
    for _ in range(100):  # the answer is read after the request ended
        if rig.handler.calls["u-8"].tracker.failsafe:
            break
        await asyncio.sleep(0.01)
    assert rig.handler.calls["u-8"].tracker.failsafe
    path = rig.handler.calls["u-8"].tracker.path
    assert path[-1]["default_destination"] == "the dialplan did not take ctm-pbx's answer"


async def test_a_hangup_while_asking_the_linkedid_still_logs_the_call(rig: Rig) -> None:
    await agi_request(rig.port, "u-9", DID, get_answer=b"HANGUP\n")
    row = await rig.writer.run(call_store.call_by_channel, "u-9")
    assert row is not None and row["linkedid"] == "u-9"


def fail_commits_of_calls(db) -> None:
    """Every commit with a new call row fails (a deferred foreign key left dangling)."""
    db.conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    db.conn.execute(
        "CREATE TABLE child (parent_id REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
    )
    db.conn.execute(
        "CREATE TRIGGER dangling AFTER INSERT ON calls BEGIN INSERT INTO child VALUES (99); END"
    )


async def test_a_row_whose_commit_failed_is_never_completed_into_another(rig: Rig) -> None:
    """The answer leaves before the commit (shared with other calls' writes): when that
    commit fails, the call goes on unlogged, and its events touch no other call's row
    (SQLite gives the lost id again)."""
    rig.writer.run_sync(fail_commits_of_calls)
    lost = await agi_request(rig.port, "u-lost", DID)
    assert lost.variables["CTM_STATUS"] == "ok"
    await asyncio.sleep(DEFER_S * 3)
    assert rig.row("u-lost") is None
    assert rig.handler.calls["u-lost"].call_id is None
    rig.writer.run_sync(lambda db: db.conn.execute("DROP TRIGGER dangling"))
    kept = await agi_request(rig.port, "u-kept", DID)
    assert kept.variables["CTM_CALL_ID"] == lost.variables["CTM_CALL_ID"], "the id again"
    for msg in (
        ami("DialBegin", "u-lost", DialString="phone1", DestUniqueid="d-9", DestChannel="P/1"),
        ami("DialEnd", "u-lost", DialStatus="ANSWER", DestUniqueid="d-9"),
        ami("Hangup", "u-lost", Cause="16"),
    ):
        rig.handler.on_ami_event(msg)
    await asyncio.sleep(DEFER_S * 3)
    row = rig.row("u-kept")
    assert row["status"] == "in_progress" and row["legs"] == [], "untouched by u-lost"


async def _until_completed(rig: Rig, uniqueid: str) -> dict:
    for _ in range(200):
        row = rig.row(uniqueid)
        if row is not None and row["status"] == "completed":
            return row
        await asyncio.sleep(0.02)
    raise AssertionError(f"row of {uniqueid} not completed: {rig.row(uniqueid)}")


async def test_a_call_whose_end_ami_missed_is_completed_from_its_spool_line(
    rig: Rig, tmp_path
) -> None:
    """AMI was away while the call was answered: its Hangup alone says nothing of the
    answer; the line of the dialplan's hangup handler does (dialplan/ctm-pbx-agi.conf)."""
    from ctm_pbx.adapters.call_spool import CallSpool
    from tests.test_call_spool import line

    spool_path = tmp_path / "calls.spool"
    rig.handler.use_spool(CallSpool(rig.handler.config, rig.writer, str(spool_path)))
    finished: list = []
    rig.handler.on_finished = finished.append
    await agi_request(rig.port, "u-9", DID)
    rig.handler.calls["u-9"].tracker.lose_sight(agi_calls.LOST_SIGHT)  # AMI was down
    spool_path.write_text(line("u-9", DID[1:], peer="phone2", spool_only=False, agi=True))
    rig.handler.on_ami_event(ami("Hangup", "u-9", Cause="16"))
    row = await _until_completed(rig, "u-9")
    assert (row["outcome"], row["answered_by"], row["mode"]) == ("answered", "desk-2", "agi")
    for _ in range(200):  # the handler learns it just after the commit
        if rig.handler.calls_finished:
            break
        await asyncio.sleep(0.02)
    assert rig.handler.calls == {} and rig.handler.calls_finished == 1
    # its one line (and the metrics' count) says what the spool said
    assert [(c.outcome, c.mode, c.id) for c in finished] == [("answered", "agi", row["id"])]
    assert not list(tmp_path.glob("calls.spool*"))


async def test_without_a_spool_line_the_end_ami_missed_stays_unknown(rig: Rig, tmp_path) -> None:
    from ctm_pbx.adapters.call_spool import CallSpool

    rig.handler.use_spool(CallSpool(rig.handler.config, rig.writer, str(tmp_path / "calls.spool")))
    await agi_request(rig.port, "u-10", DID)
    rig.handler.calls["u-10"].tracker.lose_sight(agi_calls.LOST_SIGHT)
    rig.handler.on_ami_event(ami("Hangup", "u-10", Cause="16"))
    row = await _until_completed(rig, "u-10")
    assert row["outcome"] == "unknown" and row["notes"] == agi_calls.LOST_SIGHT


async def test_a_call_that_starts_while_asterisk_lists_its_channels_is_not_lost(
    rig: Rig, monkeypatch
) -> None:
    """The reconcile after AMI's reconnection: a call whose request comes while
    CoreShowChannels runs is not in its list, and is not gone."""

    async def listing() -> set[str]:
        await agi_request(rig.port, "u-11", DID)  # arrives meanwhile
        return set()  # the list Asterisk made before it

    monkeypatch.setattr(rig.handler.ami, "live_channels", listing)
    await rig.handler.reconcile()
    await asyncio.sleep(DEFER_S * 3)
    assert "u-11" in rig.handler.calls
    assert rig.row("u-11")["status"] == "in_progress"
