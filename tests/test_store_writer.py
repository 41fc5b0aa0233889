"""The store writer's deferred jobs: written on the loop when the thread is idle,
in the order asked for, each failing alone, never lost at close."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctm_pbx.adapters.store import writer as store_writer
from ctm_pbx.adapters.store.db import open_db
from ctm_pbx.adapters.store.writer import DEFER_S, StoreWriter


def _table(db) -> None:
    db.conn.execute("CREATE TABLE IF NOT EXISTS log (n INTEGER, thread TEXT)")


def add(db, n: int) -> None:
    db.conn.execute("INSERT INTO log VALUES (?, ?)", (n, threading.current_thread().name))


def rows(db) -> list[tuple[int, str]]:
    return [tuple(r) for r in db.conn.execute("SELECT n, thread FROM log ORDER BY rowid")]


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[StoreWriter]:
    w = StoreWriter(str(tmp_path / "w.db"))
    w.run_sync(_table)
    yield w
    w.close()


async def test_deferred_jobs_are_written_together_on_the_loop_when_the_thread_is_idle(
    writer: StoreWriter,
) -> None:
    for n in range(5):
        writer.defer(add, n)
    await asyncio.sleep(DEFER_S * 3)
    loop_thread = threading.current_thread().name
    assert writer.run_sync(rows) == [(n, loop_thread) for n in range(5)]


async def test_a_job_asked_for_later_runs_after_the_deferred_ones(writer: StoreWriter) -> None:
    writer.defer(add, 1)
    writer.defer(add, 2)
    # not waiting for the timer: the read must still see both writes
    assert [n for n, _ in await writer.run(rows)] == [1, 2]


async def test_while_the_thread_is_busy_deferred_jobs_queue_behind_its_work(
    writer: StoreWriter,
) -> None:
    release = threading.Event()

    def slow(db) -> None:
        add(db, 0)
        release.wait(5)

    busy = asyncio.ensure_future(writer.run(slow))
    await asyncio.sleep(0.01)
    writer.defer(add, 1)
    await asyncio.sleep(DEFER_S * 3)  # the timer fires while the thread is busy
    release.set()
    await busy
    written = await writer.run(rows)
    assert [n for n, _ in written] == [0, 1]
    assert written[1][1] == "ctm-store", "handed to the thread, not run beside it"


async def test_a_failing_deferred_job_loses_only_itself(writer: StoreWriter, caplog) -> None:
    def fail(db) -> None:
        add(db, 99)
        raise RuntimeError("bad row")

    writer.defer(add, 1)
    writer.defer(fail, what="the bad write")
    writer.defer(add, 2)
    with caplog.at_level(logging.ERROR):
        assert [n for n, _ in await writer.run(rows)] == [1, 2]
    assert "the bad write failed: RuntimeError: bad row" in caplog.text


async def test_close_writes_what_is_still_deferred(tmp_path: Path) -> None:
    writer = StoreWriter(str(tmp_path / "w.db"))
    writer.run_sync(_table)
    writer.defer(add, 7)
    writer.close()
    assert [n for n, _ in rows(open_db(tmp_path / "w.db"))] == [7]


async def test_another_process_writing_never_stalls_the_loop(
    writer: StoreWriter, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # e.g. the CLI, mid-transaction
    writer.defer(add, 1)
    t0 = time.monotonic()
    await asyncio.sleep(DEFER_S * 3)
    assert time.monotonic() - t0 < 1, "the loop did not wait for the lock (10 s busy timeout)"
    other.execute("COMMIT")
    other.close()
    written = await writer.run(rows)
    assert written == [(1, "ctm-store")], "the thread waited for the lock instead"


def log_checkpoints(writer: StoreWriter, monkeypatch, every: int, log: list[str]) -> None:
    """Checkpoint every ``every`` commits, noting each in ``log`` as "checkpoint@<thread>"."""
    monkeypatch.setattr(store_writer, "CHECKPOINT_EVERY", every)
    checkpoint = writer._checkpoint

    def noted() -> None:
        log.append(f"checkpoint@{threading.current_thread().name}")
        checkpoint()

    monkeypatch.setattr(writer, "_checkpoint", noted)


async def test_checkpoints_run_on_the_thread_after_writes_on_the_loop(
    writer: StoreWriter, monkeypatch
) -> None:
    ran: list[str] = []
    log_checkpoints(writer, monkeypatch, 3, ran)
    for n in range(4):
        writer.defer(add, n)
        await asyncio.sleep(DEFER_S * 3)  # one commit on the loop each
    for _ in range(200):
        if ran:
            break
        await asyncio.sleep(0.01)
    assert ran and set(ran) == {"checkpoint@ctm-store"}
    autocheckpoint = writer.run_sync(lambda db: db.execute("PRAGMA wal_autocheckpoint").fetchone())
    assert autocheckpoint == (0,), "SQLite's own checkpoints would run on the loop"


async def test_the_commit_after_a_checkpoint_is_the_threads(
    writer: StoreWriter, monkeypatch
) -> None:
    # it starts the WAL over and syncs its header: an fsync, kept off the loop
    seen: list[str] = []
    log_checkpoints(writer, monkeypatch, 2, seen)

    def write(db) -> None:
        db.conn.execute("INSERT INTO log VALUES (0, '')")
        seen.append(threading.current_thread().name)

    for _ in range(6):
        writer.defer(write)
        await asyncio.sleep(DEFER_S * 3)
        await writer.run(rows)  # and let a checkpoint asked for run (a read: no WAL write)
    after = [seen[i + 1] for i, what in enumerate(seen[:-1]) if what.startswith("checkpoint@")]
    assert after and set(after) == {"ctm-store"}, seen
    assert threading.current_thread().name in seen, "the others were written on the loop"


async def test_jobs_whose_writes_did_not_stand_are_told(writer: StoreWriter) -> None:
    told: list[str] = []

    def fail(db) -> None:
        raise RuntimeError("no")

    writer.defer(add, 1, on_error=lambda exc: told.append("add"))
    writer.defer(fail, on_error=lambda exc: told.append(str(exc)))
    await writer.run(rows)
    assert told == ["no"], "only the job that failed"


def early(writer: StoreWriter, fn, *args, on_lost=None):
    """A write its caller needs answered at once, before the commit (AGI mode's call row)."""
    return writer.run(fn, *args, on_loop=True, on_lost=on_lost or (lambda exc: None))


def add_and_count(db, n: int) -> int:
    add(db, n)
    return db.conn.execute("SELECT COUNT(*) FROM log").fetchone()[0]


async def test_early_answer_writes_on_the_loop_after_the_deferred_jobs(writer: StoreWriter) -> None:
    writer.defer(add, 1)
    assert await early(writer, add_and_count, 2) == 2, "the deferred job went first"
    here = threading.current_thread().name
    assert writer.run_sync(rows) == [(1, here), (2, here)]
    with pytest.raises(ZeroDivisionError):
        await early(writer, lambda db: add(db, 3) or 1 / 0)
    assert [n for n, _ in writer.run_sync(rows)] == [1, 2], "the failed job's write undone"


async def test_early_answer_waits_on_the_thread_while_another_process_writes(
    writer: StoreWriter, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "w.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    asyncio.get_running_loop().call_later(0.1, other.execute, "COMMIT")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.ensure_future(tick())
    try:
        assert await early(writer, add_and_count, 1) == 1
    finally:
        ticker.cancel()
        other.close()
    assert ticks >= 5, "the loop ran while the job waited for the lock"
    assert writer.run_sync(rows) == [(1, "ctm-store")]


async def test_early_answer_answers_before_the_commit_that_rows_of_a_burst_share(
    writer: StoreWriter, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    commits = writer._commits
    assert [await early(writer, add_and_count, n) for n in (1, 2, 3)] == [1, 2, 3]
    assert other.execute("SELECT COUNT(*) FROM log").fetchone() == (0,), "not committed yet"
    await asyncio.sleep(DEFER_S * 3)
    assert other.execute("SELECT COUNT(*) FROM log").fetchone() == (3,)
    assert writer._commits == commits + 1, "one commit for the three"
    other.close()


async def test_work_for_the_thread_and_close_commit_the_loops_writes_first(
    tmp_path: Path,
) -> None:
    writer = StoreWriter(str(tmp_path / "w.db"))
    writer.run_sync(_table)
    await early(writer, add_and_count, 1)
    writer.defer(add, 2)
    assert await writer.run(rows) == [(1, "MainThread"), (2, "MainThread")]
    await early(writer, add_and_count, 3)
    writer.close()
    db = open_db(tmp_path / "w.db")
    assert [n for n, _ in rows(db)] == [1, 2, 3], "nothing lost at close"
    db.conn.close()


def deferred_fk(db) -> None:
    """A child whose parent must exist by the commit: a way to make a commit fail."""
    db.conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    db.conn.execute(
        "CREATE TABLE child (parent_id REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
    )


def orphan(db) -> int:
    db.conn.execute("INSERT INTO child VALUES (99)")
    return 1


async def test_when_the_commit_fails_early_answered_jobs_are_told_their_writes_were_lost(
    writer: StoreWriter, caplog
) -> None:
    writer.run_sync(deferred_fk)
    lost: list[str] = []
    assert await early(writer, add_and_count, 1, on_lost=lambda exc: lost.append("add")) == 1
    assert await early(writer, orphan, on_lost=lambda exc: lost.append(str(exc))) == 1
    with caplog.at_level(logging.ERROR):
        await asyncio.sleep(DEFER_S * 3)
    assert lost == ["add", "FOREIGN KEY constraint failed"], "both: one commit, lost whole"
    assert writer.run_sync(rows) == []
    assert await early(writer, add_and_count, 2) == 1, "the next window writes as usual"


async def test_on_loop_run_writes_on_the_loop_and_answers_once_committed(
    writer: StoreWriter, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    writer.defer(add, 1)
    assert await writer.run(add_and_count, 2, on_loop=True) == 2, "the deferred job went first"
    assert other.execute("SELECT COUNT(*) FROM log").fetchone() == (2,), "committed"
    here = threading.current_thread().name
    assert writer.run_sync(rows) == [(1, here), (2, here)]
    with pytest.raises(ZeroDivisionError):
        await writer.run(lambda db: add(db, 3) or 1 / 0, on_loop=True)
    assert [n for n, _ in writer.run_sync(rows)] == [1, 2], "the failed job's write undone"
    other.close()


async def test_on_loop_run_jobs_asked_for_together_share_one_commit(writer: StoreWriter) -> None:
    commits = writer._commits
    assert await asyncio.gather(
        *(writer.run(add_and_count, n, on_loop=True) for n in (1, 2, 3))
    ) == [
        1,
        2,
        3,
    ]
    assert writer._commits == commits + 1


async def test_on_loop_run_waits_on_the_thread_while_another_process_writes(
    writer: StoreWriter, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "w.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    asyncio.get_running_loop().call_later(0.1, other.execute, "COMMIT")
    try:
        assert await writer.run(add_and_count, 1, on_loop=True) == 1
    finally:
        other.close()
    assert writer.run_sync(rows) == [(1, "ctm-store")]
    assert await writer.run(add_and_count, 2, on_loop=True) == 2, "and on the loop again after"
    assert writer.run_sync(rows)[1] == (2, threading.current_thread().name)


async def test_when_the_commit_fails_on_loop_jobs_get_the_error_not_a_value(
    writer: StoreWriter, caplog
) -> None:
    writer.run_sync(deferred_fk)
    with caplog.at_level(logging.ERROR):
        answers = await asyncio.gather(
            writer.run(add_and_count, 1, on_loop=True),
            writer.run(orphan, on_loop=True),
            return_exceptions=True,
        )
    assert [type(a) for a in answers] == [sqlite3.IntegrityError] * 2, "one commit, lost whole"
    assert writer.run_sync(rows) == []
    assert await writer.run(add_and_count, 2, on_loop=True) == 1, "the next one writes as usual"


async def test_writes_wait_out_another_process_holding_the_lock_past_the_busy_timeout(
    writer: StoreWriter, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(store_writer, "BUSY_MS", 50)  # set by the loop's first try
    monkeypatch.setattr(store_writer, "RETRY_FIRST_S", 0.05)
    other = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # e.g. a stuck CLI
    for n in range(3):
        writer.defer(add, n)
        await asyncio.sleep(DEFER_S * 3)
    for _ in range(250):  # under load the third write may take a while to reach the backlog
        health = writer.health()
        if health["writes_waiting"] == 3:
            break
        await asyncio.sleep(0.02)
    assert not health["writable"] and "locked" in health["write_error"], health
    assert health["writes_waiting"] == 3
    assert await writer.run(lambda db: db.execute("SELECT 1").fetchone()) == (1,)
    other.execute("COMMIT")
    other.close()
    for _ in range(500):
        if writer.health()["writable"]:
            break
        await asyncio.sleep(0.02)
    assert [n for n, _ in writer.run_sync(rows)] == [0, 1, 2], "none lost, in order"


@pytest.mark.parametrize(
    ("make", "waits"),
    [
        ("locked", True),
        ("read_only", True),
        ("constraint", False),
    ],
)
def test_which_errors_mean_the_database_cannot_be_written(
    tmp_path: Path, make: str, waits: bool
) -> None:
    path = tmp_path / "e.db"
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    setup.execute("INSERT INTO t VALUES (1)")
    if make == "locked":
        setup.execute("BEGIN IMMEDIATE")
        conn = sqlite3.connect(path, timeout=0, isolation_level=None)
        sql = "INSERT INTO t VALUES (2)"
    elif make == "read_only":
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        sql = "INSERT INTO t VALUES (2)"
    else:
        conn = sqlite3.connect(path, isolation_level=None)
        sql = "INSERT INTO t VALUES (1)"
    with pytest.raises(sqlite3.Error) as raised:
        conn.execute(sql)
    assert store_writer.unwritable(raised.value) is waits
