"""A full disk, for real: the database on a small tmpfs, filled with a file.

While nothing can be written, AGI calls are still routed, the visit API answers
from memory, the writer's health says so, and every write waits in memory; once
the file is removed, every row arrives, in order, with the ids handed out before.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ctm_pbx.adapters.agi_calls import AgiCallHandler
from ctm_pbx.adapters.config_loader import parse_config
from ctm_pbx.adapters.live_inventory import LiveInventory
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store import numbers as number_store
from ctm_pbx.adapters.store import writer as store_writer
from ctm_pbx.adapters.store.schema import migrate
from ctm_pbx.adapters.store.writer import DEFER_S, StoreUnavailable, StoreWriter
from ctm_pbx.core.inventory import NumberRecord
from ctm_pbx.edges.cli import sync_config_numbers
from ctm_pbx.edges.web import VisitApi, create_app
from tests.helpers import BROWSER_UA, config
from tests.test_agi_adapter import DID, agi_request, ami, free_port

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 and os.environ.get("CI") != "true", reason="mounting a tmpfs needs root"
)


class Disk:
    """A tmpfs of a few MB; ``fill`` takes every byte left, ``free`` gives them back."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.filler = root / "filler"

    def fill(self, db: Path) -> None:
        # an empty WAL: the next commit needs new space (a WAL is otherwise reused)
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (1 << 16, 512, 1):
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, b"\0" * size)
        finally:
            os.close(fd)
        assert os.statvfs(self.root).f_bavail == 0

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def disk(tmp_path: Path, monkeypatch) -> Iterator[Disk]:
    root = tmp_path / "disk"
    root.mkdir()
    # tries again every 0.05 s, up to 0.2 s: the test does not wait for the daemon's pace
    monkeypatch.setattr(store_writer, "RETRY_FIRST_S", 0.05)
    monkeypatch.setattr(store_writer, "RETRY_MAX_S", 0.2)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(root)], check=True)
    try:
        yield Disk(root)
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


async def until_writable(writer: StoreWriter, seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.02)):
        if writer.health()["writable"]:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"still not writable: {writer.health()}")


def other_connection(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(db)


# -- the writer ---------------------------------------------------------------------


def make_log(db) -> None:
    db.conn.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, n INTEGER, pad BLOB)")


@dataclass
class Row:
    n: int
    id: int | None = None


def add(db, row: Row) -> int:
    """Like ``insert_call``: a row of 4 KB (the WAL must grow), the same id when run again."""
    cur = db.conn.execute(
        "INSERT INTO log (id, n, pad) VALUES (?, ?, zeroblob(4096))", (row.id, row.n)
    )
    row.id = cur.lastrowid
    return row.id


async def test_writes_wait_while_the_disk_is_full_and_arrive_in_order(disk: Disk) -> None:
    path = disk.root / "w.db"
    writer = StoreWriter(str(path))
    try:
        writer.run_sync(make_log)
        disk.fill(path)
        rows = [Row(n) for n in range(40)]
        answers: list[int | None] = []
        for i, row in enumerate(rows):
            if i % 2:
                writer.defer(add, row)
            else:  # a caller waits: answered at once, before the commit (or told it waits)
                try:
                    answers.append(
                        await writer.run(add, row, on_loop=True, on_lost=lambda exc: None)
                    )
                except StoreUnavailable as exc:
                    assert exc.kept
                    answers.append(None)
            await asyncio.sleep(DEFER_S / 2)
        await asyncio.sleep(DEFER_S * 3)
        health = writer.health()
        assert health["writable"] is False and health["unwritable_since"]
        assert "full" in health["write_error"]
        assert health["writes_waiting"] == len(rows), health
        assert answers[0] is not None, "the first was answered before its commit failed"
        assert await writer.run(lambda db: db.execute("SELECT COUNT(*) FROM log").fetchone()) == (
            0,
        ), "reads still answer"
        with pytest.raises(StoreUnavailable) as refused:
            await writer.run(add, Row(99))
        assert not refused.value.kept, "a run() that writes is told, not kept"
        disk.free()
        await until_writable(writer)
        assert writer.health()["writes_waiting"] == 0
        stored = other_connection(path).execute("SELECT id, n FROM log ORDER BY id").fetchall()
        assert [n for _id, n in stored] == list(range(40)), "every row, in the order asked"
        given = [a for a in answers if a is not None]
        assert set(given) <= {id_ for id_, _n in stored}
        assert all(dict(stored)[row.id] == row.n for row in rows), "ids handed out stayed"
        writer.defer(add, Row(40))
        await asyncio.sleep(DEFER_S * 3)
        assert other_connection(path).execute("SELECT MAX(n) FROM log").fetchone() == (40,)
    finally:
        writer.close()


async def test_past_the_bound_new_writes_are_refused_and_the_waiting_ones_kept(
    disk: Disk,
) -> None:
    path = disk.root / "w.db"
    writer = StoreWriter(str(path), max_backlog=5)
    try:
        writer.run_sync(make_log)
        disk.fill(path)
        told: list[int] = []
        for n in range(8):
            writer.defer(add, Row(n), on_error=lambda exc, n=n: told.append(n))
            await asyncio.sleep(DEFER_S * 2)
        await asyncio.sleep(DEFER_S * 3)
        health = writer.health()
        assert (health["writes_waiting"], health["writes_refused"]) == (5, 3)
        assert told == [5, 6, 7], "the refused ones are told; the oldest stay"
        disk.free()
        await until_writable(writer)
        stored = other_connection(path).execute("SELECT n FROM log ORDER BY id").fetchall()
        assert [n for (n,) in stored] == [0, 1, 2, 3, 4]
    finally:
        writer.close()


async def test_close_writes_what_waits_if_space_has_returned(disk: Disk) -> None:
    path = disk.root / "w.db"
    writer = StoreWriter(str(path))
    writer.run_sync(make_log)
    disk.fill(path)
    writer.defer(add, Row(1))
    await asyncio.sleep(DEFER_S * 3)
    assert writer.health()["writes_waiting"] == 1
    disk.free()
    writer.close()  # before the next try
    assert other_connection(path).execute("SELECT n FROM log").fetchall() == [(1,)]


# -- AGI mode -----------------------------------------------------------------------


@dataclass
class Rig:
    handler: AgiCallHandler
    writer: StoreWriter
    port: int
    path: Path


@pytest.fixture
async def rig(disk: Disk) -> AsyncIterator[Rig]:
    port = free_port()
    cfg = config(
        f"""\
asterisk:
  mode: agi
  agi: {{port: {port}, timeout_ms: 1000}}
  ami: {{port: {free_port()}}}
"""
    )
    path = disk.root / "ctm.db"
    writer = StoreWriter(str(path))
    writer.run_sync(migrate)
    writer.run_sync(
        number_store.add_numbers,
        [NumberRecord(DID, "billboard", None, "seq")],
        now="2026-11-28T00:00:00.000Z",
    )
    handler = AgiCallHandler(cfg, writer, LiveInventory(writer))
    await handler.start()
    yield Rig(handler, writer, port, path)
    await handler.close()
    writer.close()


def complete(rig: Rig, uniqueid: str) -> None:
    dest = {"DestUniqueid": f"d-{uniqueid}", "DestChannel": "PJSIP/phone1-00000002"}
    for msg in (
        ami("DialBegin", uniqueid, DialString="phone1", **dest),
        ami("DialEnd", uniqueid, DialStatus="ANSWER", **dest),
        ami("Hangup", uniqueid, Cause="16"),
    ):
        rig.handler.on_ami_event(msg)


async def test_agi_calls_on_a_full_disk_are_routed_and_logged_when_space_returns(
    rig: Rig, disk: Disk
) -> None:
    disk.fill(rig.path)
    answers = {}
    for i in range(12):
        uniqueid = f"u-{i}"
        result = await agi_request(rig.port, uniqueid, DID)
        answers[uniqueid] = result.variables
        assert result.variables["CTM_STATUS"] == "ok", "routed all the same"
        assert result.variables["CTM_DIAL_1"] == "PJSIP/phone1,5"
        if i % 2 == 0:
            complete(rig, uniqueid)
        await asyncio.sleep(DEFER_S)
    await asyncio.sleep(DEFER_S * 3)
    health = rig.writer.health()
    assert not health["writable"] and health["writes_waiting"] > 12, health
    assert rig.writer.run_sync(call_store.call_by_channel, "u-0") is None, "not written yet"
    assert answers["u-0"]["CTM_CALL_ID"], "answered before the commit that failed"
    disk.free()
    await until_writable(rig.writer)
    for uniqueid, variables in answers.items():
        row = rig.writer.run_sync(call_store.call_by_channel, uniqueid)
        assert row is not None, f"{uniqueid}: its row arrived"
        assert row["source"] == "billboard" and row["attribution_confidence"] == 1.0
        if variables["CTM_CALL_ID"]:
            assert str(row["id"]) == variables["CTM_CALL_ID"], "the id it was given"
        done = int(uniqueid[2:]) % 2 == 0
        assert row["status"] == ("completed" if done else "in_progress"), uniqueid
        if done:
            assert row["outcome"] == "answered" and row["legs"][0]["result"] == "answered"
    for i in range(1, 12, 2):  # the calls still ringing end now, as usual
        complete(rig, f"u-{i}")
    await asyncio.sleep(DEFER_S * 3)
    assert rig.writer.run_sync(call_store.call_by_channel, "u-1")["status"] == "completed"


# -- the visit API ------------------------------------------------------------------

WEB_CONFIG = """\
web: {allowed_origins: ["https://shop.example.com"]}
sources:
  google-ads: {preset: google_ads}
  facebook: {preset: facebook}
  direct: {preset: direct}
targets:
  sales: "+1 312 555 0100"
pools:
  gads: {source: google-ads, overflow_number: "+13125550159"}
receiving_numbers:
  desk: {number: "+13125550101", dial: "PJSIP/phone1"}
routes:
  main: {type: single, targets: [desk]}
tracking_numbers:
  - {number: "+13125550150", pool: gads, route: main}
  - {number: "+13125550151", pool: gads, route: main}
  - {number: "+13125550159", source: google-ads, route: main}
  - {number: "+13125550160", source: facebook, route: main}
"""
SHOP = "https://shop.example.com"


async def test_the_visit_api_answers_from_memory_on_a_full_disk(aiohttp_client, disk) -> None:
    cfg = parse_config(WEB_CONFIG, env={}, base_dir=disk.root)
    path = disk.root / "ctm.db"
    writer = StoreWriter(str(path))
    try:
        writer.run_sync(migrate)
        writer.run_sync(lambda db: sync_config_numbers(cfg, db))
        inventory = LiveInventory(writer)
        await inventory.load()
        api = VisitApi(cfg, writer, active_numbers=lambda: inventory.numbers)
        client = await aiohttp_client(create_app(lambda: {"ari_connected": True}, api))

        async def visit(landing: str, visitor_id: str | None = None) -> tuple[int, dict]:
            body = {"visitor_id": visitor_id, "landing_url": landing, "referrer": ""}
            headers = {"Origin": SHOP, "User-Agent": BROWSER_UA}  # a browser: pools serve it
            resp = await client.post("/api/visit", json=body, headers=headers)
            return resp.status, await resp.json()

        _, known = await visit(f"{SHOP}/?gclid=k")
        held = known["numbers"]["+13125550100"]
        await asyncio.sleep(0.3)  # its visit is committed
        disk.fill(path)
        for page in ("/a", "/b", "/c"):  # remembered: answered, its page views wait
            status, again = await visit(SHOP + page, known["visitor_id"])
            assert status == 200 and again["numbers"]["+13125550100"] == held
        status, new = await visit(f"{SHOP}/?gclid=n")
        assert status == 200, new
        assert new["source"] == "google-ads" and new["visitor_id"]
        assert new["numbers"]["+13125550100"]["number"] == "+13125550159", "the overflow"
        status, fb = await visit(f"{SHOP}/?fbclid=f")
        assert (status, fb["numbers"]["+13125550100"]["number"]) == (200, "+13125550160")
        renew = await client.post("/api/renew", json={"visitor_id": new["visitor_id"]})
        assert renew.status == 404, "not stored: the script starts a visit again"
        await asyncio.sleep(0.3)
        assert writer.health()["writes_waiting"] >= 1, "the page views wait"
        disk.free()
        await until_writable(writer)
        pages = other_connection(path).execute(
            "SELECT SUM(pages) FROM visits WHERE visitor_id = ?", [known["visitor_id"]]
        )
        assert pages.fetchone() == (4,), "the page views made while the disk was full"
        status, stored = await visit(f"{SHOP}/?gclid=n2", new["visitor_id"])
        assert status == 200 and stored["numbers"]["+13125550100"]["number"] in (
            "+13125550150",
            "+13125550151",
        ), "stored now, with a pool number"
    finally:
        writer.close()


async def test_agi_calls_on_a_full_disk_do_not_wait_for_the_writers_thread(
    rig: Rig, disk: Disk
) -> None:
    """While the disk is full the thread may be busy (writing what waits again, a slow
    read): the AGI answer does not queue behind it."""
    disk.fill(rig.path)
    await agi_request(rig.port, "u-first", DID)  # its commit fails: the disk is full
    await asyncio.sleep(DEFER_S * 3)
    assert not rig.writer.health()["writable"]
    release = threading.Event()
    busy = asyncio.ensure_future(rig.writer.run(lambda db: release.wait(5)))
    try:
        result = await agi_request(rig.port, "u-busy", DID)  # the timeout is 1 s
        assert result.variables["CTM_STATUS"] == "ok" and not result.variables["CTM_CALL_ID"]
    finally:
        release.set()
        await busy
    disk.free()
    await until_writable(rig.writer)
    assert rig.writer.run_sync(call_store.call_by_channel, "u-busy") is not None
