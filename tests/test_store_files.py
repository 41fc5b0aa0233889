"""The database and its -wal/-shm files are private (0600): they hold callers' numbers.

Under the usual umask (022) SQLite creates files 0644, readable by every user
of the machine; ctm-pbx creates the database 0600 and SQLite gives its -wal and
-shm files the database's mode. An older, world-readable database loses the
other users' access at the next db migrate.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from ctm_pbx.adapters.store import migrate, open_db
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.edges.cli import main
from tests.helpers import BASE


@pytest.fixture(autouse=True)
def usual_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def companions(db: Path) -> tuple[Path, Path]:
    return Path(f"{db}-wal"), Path(f"{db}-shm")


def cli(tmp_path: Path, *args: str, db: str = "ctm.db"):
    config = tmp_path / "config.yaml"
    config.write_text(f"database: {{path: {db}}}\n" + BASE, encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(config), *args])
    assert result.exit_code == 0, result.output
    return result


def test_db_migrate_creates_the_database_wal_and_shm_0600(tmp_path: Path) -> None:
    cli(tmp_path, "db", "migrate", db="data/ctm.db")
    db = tmp_path / "data" / "ctm.db"
    assert mode(db) == 0o600
    assert mode(db.parent) == 0o700, "a folder made for it is private too"
    database = open_db(db, create=False)  # a writer, as the daemon: -wal and -shm appear
    database.execute("CREATE TABLE t (x)")
    database.execute("INSERT INTO t VALUES (1)")
    wal, shm = companions(db)
    assert (mode(wal), mode(shm)) == (0o600, 0o600)
    database.conn.close()


def test_the_daemons_writer_creates_a_new_database_0600(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    writer = StoreWriter(str(db))
    try:
        writer.run_sync(migrate)
        assert [mode(p) for p in (db, *companions(db))] == [0o600, 0o600, 0o600]
    finally:
        writer.close()


def test_a_read_command_leaves_private_files(tmp_path: Path) -> None:
    cli(tmp_path, "db", "migrate")
    db = tmp_path / "ctm.db"
    cli(tmp_path, "calls", "list")  # a reader creates the -shm (and -wal) of a WAL database
    for path in (db, *companions(db)):
        if path.exists():
            assert mode(path) == 0o600, path


def test_db_migrate_takes_other_users_access_from_an_old_database(tmp_path: Path) -> None:
    db = tmp_path / "ctm.db"
    conn = sqlite3.connect(db)  # as earlier ctm-pbx versions created it: 0644
    conn.execute("PRAGMA journal_mode = wal")
    conn.close()
    assert mode(db) == 0o644
    out = cli(tmp_path, "db", "migrate").output
    assert f"other users' access removed: {db}: mode 0644 -> 0640" in out
    assert mode(db) == 0o640, "the group keeps what it had"
