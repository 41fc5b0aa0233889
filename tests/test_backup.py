"""Backups while another process writes, restores, the backup ``db migrate`` takes, and the
one rule that refuses to write a database a newer ctm-pbx migrated."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ctm_pbx.adapters.store import backup as backups
from ctm_pbx.adapters.store import open_db
from ctm_pbx.adapters.store.schema import NewerSchema, migrations, pending
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.edges.cli import main
from tests.helpers import BASE

LATEST = migrations._migrations[-1].name.split("_")[0]  # the schema this code migrates to

# Another process writing as the daemon does (through the one writer), as fast as it
# can: each job adds a row and moves a counter to the number of rows, in one commit.
WRITER = """
import sys, time
from ctm_pbx.adapters.store.writer import StoreWriter
w = StoreWriter(sys.argv[1])
def job(db):
    n = db.conn.execute("SELECT count(*) FROM route_state WHERE route LIKE 'r%'").fetchone()[0]
    db.conn.execute("INSERT INTO route_state VALUES (?, '{}', 'x')", (f"r{n}",))
    db.conn.execute("UPDATE route_state SET state_json = ? WHERE route = 'counter'", (str(n + 1),))
w.run_sync(lambda db: db.conn.execute("INSERT INTO route_state VALUES ('counter', '0', 'x')"))
print("ready", flush=True)
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    w.run_sync(job)
w.close()
"""
HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1])
conn.execute("SELECT count(*) FROM calls").fetchone()
print("open", flush=True)
time.sleep(60)
"""


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("database: {path: ctm.db}\n" + BASE, encoding="utf-8")
    return path


def cli(conf: Path, *args: str, ok: bool = True, input: str | None = None):
    result = CliRunner().invoke(main, ["--config", str(conf), *args], input=input)
    assert (result.exit_code == 0) == ok, result.output
    assert "Traceback" not in result.output
    return result


def start(script: str, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # it is ready
    return proc


def counter_and_rows(path: Path) -> tuple[int, int]:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        counter = int(conn.execute("SELECT state_json FROM route_state WHERE route = 'counter'")
                      .fetchone()[0])  # fmt: skip
        rows = conn.execute("SELECT count(*) FROM route_state WHERE route LIKE 'r%'").fetchone()[0]
        return counter, rows
    finally:
        conn.close()


def test_backups_are_consistent_while_another_process_writes(conf: Path, tmp_path: Path) -> None:
    cli(conf, "db", "migrate")
    db = tmp_path / "ctm.db"
    writer = start(WRITER, str(db), "6")
    try:
        seen = []
        for i in range(4):
            time.sleep(0.3)
            out = cli(conf, "db", "backup", str(tmp_path / f"b{i}.db")).output
            assert f"to {tmp_path / f'b{i}.db'} (" in out and f"schema {LATEST}" in out
            counter, rows = counter_and_rows(tmp_path / f"b{i}.db")
            assert counter == rows, "the copy is one moment of the database"
            seen.append(rows)
            assert (tmp_path / f"b{i}.db").stat().st_mode & 0o777 == 0o600
        assert seen == sorted(seen) and seen[-1] > seen[0] > 0, "the writer went on meanwhile"
    finally:
        writer.wait(20)
    assert writer.returncode == 0
    assert not list(tmp_path.glob(".*.part"))
    assert not Path(f"{tmp_path / 'b0.db'}-wal").exists()  # one self-contained file
    cli(conf, "db", "backup", str(tmp_path / "b0.db"), ok=False)  # never overwrites


def test_restore_refuses_while_the_database_is_open_then_restores(
    conf: Path, tmp_path: Path
) -> None:
    cli(conf, "db", "migrate")
    cli(conf, "numbers", "add", "+13125550170", "--source", "billboard", "--route", "one")
    cli(conf, "db", "backup", str(tmp_path / "before.db"))
    cli(conf, "numbers", "release", "+13125550170")
    holder = start(HOLDER, str(tmp_path / "ctm.db"))
    try:
        result = cli(conf, "db", "restore", str(tmp_path / "before.db"), "--yes", ok=False)
        assert "is in use" in result.output and "stop the daemon first" in result.output
        assert backups.in_use(tmp_path / "ctm.db")
    finally:
        holder.kill()
        holder.wait()
    assert not backups.in_use(tmp_path / "ctm.db")
    cli(conf, "db", "restore", str(tmp_path / "before.db"), ok=False, input="n\n")  # asked: no
    out = cli(conf, "db", "restore", str(tmp_path / "before.db"), "--yes").output
    assert f"restored {tmp_path / 'before.db'} to {tmp_path / 'ctm.db'}" in out
    kept = next(tmp_path.glob(f"ctm.db.before-restore-{LATEST}-*.bak"))
    assert f"kept as {kept}" in out
    listed = cli(conf, "numbers", "list").output  # active numbers only
    assert "+13125550170" in listed, "the backup's inventory is back"
    old = sqlite3.connect(kept)
    status = old.execute(
        "SELECT status FROM tracking_numbers WHERE number = '+13125550170'"
    ).fetchone()
    assert status == ("released",), "the replaced database is kept as it was"
    old.close()


def test_restore_refuses_what_is_not_a_ctm_database(conf: Path, tmp_path: Path) -> None:
    cli(conf, "db", "migrate")
    junk = tmp_path / "junk.db"
    sqlite3.connect(junk).execute("CREATE TABLE t (x)").connection.close()
    result = cli(conf, "db", "restore", str(junk), "--yes", ok=False)
    assert "is not a ctm-pbx database" in result.output


def older_database(conf: Path, tmp_path: Path) -> Path:
    """A database as ctm-pbx left it before m018 (with a number in it)."""
    path = tmp_path / "ctm.db"
    db = open_db(path)
    migrations.apply(db, stop_before="m018_retention")
    db.conn.close()
    return path


def test_db_migrate_backs_up_first_and_says_where(conf: Path, tmp_path: Path) -> None:
    path = older_database(conf, tmp_path)
    names = [m.name for m in migrations._migrations]
    before = names[names.index("m018_retention") - 1].split("_")[0]  # the schema it had
    out = cli(conf, "db", "migrate").output
    backup = next(tmp_path.glob(f"ctm.db.{before}-*.bak"))
    assert f"backed up the database (schema {before}) to {backup} before migrating" in out
    assert f"ctm-pbx db restore {backup}" in out
    assert "applied m018_retention" in out
    assert backups.check(backup).version == before
    assert backups.check(path).version == LATEST
    out = cli(conf, "db", "migrate").output  # nothing to apply: no backup
    assert "backed up" not in out and len(list(tmp_path.glob("*.bak"))) == 1
    # undoing the upgrade: the restored database says it needs migrating
    out = cli(conf, "db", "restore", str(backup), "--yes").output
    assert "its schema is older than this ctm-pbx" in out
    db = open_db(path)
    assert pending(db) == names[names.index("m018_retention") :]
    db.conn.close()


def test_purge_on_an_older_schema_says_migrate_first(conf: Path, tmp_path: Path) -> None:
    older_database(conf, tmp_path)
    for args in (("db", "purge", "--dry-run"), ("db", "purge")):
        result = cli(conf, *args, ok=False)
        assert "run 'ctm-pbx db migrate' first" in result.output


def test_a_new_database_needs_no_backup(conf: Path, tmp_path: Path) -> None:
    out = cli(conf, "db", "migrate").output
    assert "backed up" not in out and not list(tmp_path.glob("*.bak"))


def newer_database(conf: Path, tmp_path: Path) -> Path:
    cli(conf, "db", "migrate")
    path = tmp_path / "ctm.db"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
            " VALUES ('ctm_pbx', 'm099_future', '2027-01-01')"
        )
    conn.close()
    return path


@pytest.mark.parametrize(
    "args",
    [
        ("db", "migrate"),
        ("run",),
        ("db", "purge"),
        ("numbers", "add", "+13125550170", "--source", "billboard", "--route", "one"),
        ("privacy", "forget", "--caller", "+13125550999"),
        ("users", "add", "alice", "--password-stdin"),
    ],
)
def test_every_writer_refuses_a_newer_schema_by_the_same_rule(
    conf: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    newer_database(conf, tmp_path)
    result = cli(conf, *args, ok=False, input="pw-long-enough-123\n")
    assert "its schema is newer than this ctm-pbx (m099_future applied by a newer version)" in (
        result.output
    )
    assert "upgrade ctm-pbx" in result.output


def test_the_daemons_writer_refuses_a_newer_schema(conf: Path, tmp_path: Path) -> None:
    path = newer_database(conf, tmp_path)
    with pytest.raises(NewerSchema, match="m099_future"):
        StoreWriter(str(path))


def test_reading_and_backing_up_a_newer_schema_still_work(conf: Path, tmp_path: Path) -> None:
    newer_database(conf, tmp_path)
    result = CliRunner().invoke(main, ["--config", str(conf), "numbers", "list"])
    assert result.exit_code == 0 and "upgraded by a newer ctm-pbx" in result.output
    assert "dry run" in cli(conf, "db", "purge", "--dry-run").output
    cli(conf, "db", "backup", str(tmp_path / "b.db"))
    result = cli(conf, "db", "restore", str(tmp_path / "b.db"), "--yes", ok=False)
    assert "newer than this ctm-pbx" in result.output
