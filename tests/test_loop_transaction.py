"""The loop's transaction: it exists only while it holds the write lock, it ends once,
and while it is open the writer's thread is handed nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctm_pbx.adapters.store.db import open_db
from ctm_pbx.adapters.store.loop_transaction import LoopTransaction, TransactionEnded
from ctm_pbx.adapters.store.write_jobs import Interrupted, Write
from ctm_pbx.adapters.store.writer import StoreWriter


@pytest.fixture
def db(tmp_path: Path) -> Iterator:
    d = open_db(tmp_path / "t.db")
    d.conn.execute("CREATE TABLE log (n INTEGER)")
    d.conn.execute("PRAGMA busy_timeout = 0")
    yield d
    d.conn.close()


def other(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, timeout=0)


def count(path: Path) -> int:
    conn = other(path)
    try:
        return conn.execute("SELECT COUNT(*) FROM log").fetchone()[0]
    finally:
        conn.close()


def test_it_holds_the_write_lock_until_it_ends(db, tmp_path: Path) -> None:
    tx = LoopTransaction.begin(db)
    assert tx is not None
    tx.run(lambda d, n: d.conn.execute("INSERT INTO log VALUES (?)", (n,)), (1,), {})
    conn = other(tmp_path / "t.db")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        conn.execute("BEGIN IMMEDIATE")
    assert count(tmp_path / "t.db") == 0, "not committed yet"
    assert tx.commit() is None
    conn.execute("BEGIN IMMEDIATE")  # given back
    conn.execute("ROLLBACK")
    conn.close()
    assert count(tmp_path / "t.db") == 1


def test_begin_gives_none_while_another_process_holds_the_lock(db, tmp_path: Path) -> None:
    conn = other(tmp_path / "t.db")
    conn.execute("BEGIN IMMEDIATE")
    try:
        assert LoopTransaction.begin(db) is None
        assert not db.conn.in_transaction
    finally:
        conn.execute("ROLLBACK")
        conn.close()


ENDS = [
    ("commit", lambda tx: tx.commit()),
    ("rollback", lambda tx: tx.rollback()),
]
USES = [
    ("run", lambda tx: tx.run(lambda d: None, (), {})),
    ("write", lambda tx: tx.write([Write(lambda d: None, ())])),
    ("wait", lambda tx: tx.wait(None, 1)),
    ("commit", lambda tx: tx.commit()),
    ("rollback", lambda tx: tx.rollback()),
]


@pytest.mark.parametrize("end", [e for _, e in ENDS], ids=[n for n, _ in ENDS])
@pytest.mark.parametrize("use", [u for _, u in USES], ids=[n for n, _ in USES])
def test_once_ended_it_cannot_be_used(db, end, use) -> None:
    tx = LoopTransaction.begin(db)
    assert tx is not None
    end(tx)
    with pytest.raises(TransactionEnded):
        use(tx)


def test_a_rollback_undoes_everything_in_it(db, tmp_path: Path) -> None:
    tx = LoopTransaction.begin(db)
    assert tx is not None
    tx.write([Write(lambda d: d.conn.execute("INSERT INTO log VALUES (1)"), ())])
    tx.rollback()
    assert count(tmp_path / "t.db") == 0 and tx.writes  # the writer keeps them for later


def test_an_unwritable_database_interrupts_a_write_with_what_to_keep(db) -> None:
    full_error = sqlite3.OperationalError("database or disk is full")
    full_error.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]

    def disk_full(d) -> None:
        raise full_error

    tx = LoopTransaction.begin(db)
    assert tx is not None
    first = Write(lambda d: d.conn.execute("INSERT INTO log VALUES (1)"), ())
    second = Write(disk_full, ())
    with pytest.raises(Interrupted) as caught:
        tx.write([first, second])
    assert caught.value.keep == [first, second]
    tx.rollback()


async def test_a_failing_job_on_the_loop_gives_the_lock_back(tmp_path: Path) -> None:
    writer = StoreWriter(str(tmp_path / "w.db"))
    try:
        writer.run_sync(lambda d: d.conn.execute("CREATE TABLE log (n INTEGER)"))
        with pytest.raises(ZeroDivisionError):
            await writer.run(lambda d: 1 / 0, on_loop=True)
        for _ in range(10):  # a few turns of the loop: the (empty) transaction ends
            await asyncio.sleep(0)
        conn = other(tmp_path / "w.db")
        conn.execute("BEGIN IMMEDIATE")  # another process can write
        conn.execute("ROLLBACK")
        conn.close()
    finally:
        writer.close()


async def test_the_thread_is_handed_nothing_while_the_loop_holds_the_lock(
    tmp_path: Path,
) -> None:
    writer = StoreWriter(str(tmp_path / "w.db"))
    try:
        writer.run_sync(lambda d: d.conn.execute("CREATE TABLE log (n INTEGER)"))
        writer.defer(lambda d: d.conn.execute("INSERT INTO log VALUES (1)"))
        writer._write_deferred()  # the timer: on the loop, committed
        assert writer._here is None
        with writer._deferred_lock:
            assert writer._begin_here() is not None
            with pytest.raises(RuntimeError, match="loop's transaction is open"):
                writer._put((lambda d: None, (), {}, lambda v, e: None, None))
        # work for the thread commits the loop's transaction first
        assert await writer.run(lambda d: d.conn.execute("SELECT 1").fetchone()[0]) == 1
        assert writer._here is None
    finally:
        writer.close()
