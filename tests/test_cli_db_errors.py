"""A database the CLI cannot use is one line and exit status 1, never a traceback.

Real conditions, not simulated ones: a text file, a folder, a read-only tmpfs
mount, an immutable file (chattr +i), a tmpfs that fills up during db migrate.
Mounts and attributes need root; they are undone by the fixtures.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from ctm_pbx.edges.cli import main
from tests.helpers import BASE

DECLARED = "tracking_numbers:\n  - {number: '+1 312 555 0160', source: billboard, route: one}\n"
ADD = ("numbers", "add", "+13125550170", "--source", "billboard", "--route", "one")


def write_config(folder: Path, db: Path) -> Path:
    path = folder / "config.yaml"
    path.write_text(f"database: {{path: '{db}'}}\n" + BASE + DECLARED, encoding="utf-8")
    return path


def invoke(config: Path, *args: str, ok: bool = True):
    result = CliRunner().invoke(main, ["--config", str(config), *args])
    if ok:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit), repr(result.exception)
        assert result.output.splitlines()[-1].startswith("Error: "), result.output
    return result


def root_or_skip(what: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"{what} needs root")


@pytest.fixture
def tmpfs(tmp_path: Path):
    """A small tmpfs of its own (4 MB), unmounted afterwards."""
    root_or_skip("mounting a tmpfs")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)
    if os.path.ismount(mnt):
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("args", [("numbers", "list"), ("calls", "list"), ("db", "migrate"), ADD])
def test_a_text_file_is_not_a_database(tmp_path: Path, args) -> None:
    db = tmp_path / "notes.txt"
    db.write_text("shopping list\n" * 100, encoding="utf-8")
    result = invoke(write_config(tmp_path, db), *args, ok=False)
    assert f"database {db}: it is not a SQLite database (is database.path right?)" in (
        result.output
    )
    assert db.read_text(encoding="utf-8") == "shopping list\n" * 100


def test_a_folder_is_not_a_database(tmp_path: Path) -> None:
    db = tmp_path / "data"
    db.mkdir()
    for args in (("numbers", "list"), ("db", "migrate"), ADD):
        result = invoke(write_config(tmp_path, db), *args, ok=False)
        assert f"database {db}: it is a folder, not a database file" in result.output


def test_a_read_only_mount_reads_and_refuses_writes(tmpfs: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, tmpfs / "ctm.db")
    invoke(config, "db", "migrate")
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    assert "+13125550160" in invoke(config, "numbers", "list").output
    assert "no calls" in invoke(config, "calls", "list").output
    for args in (("db", "migrate"), ADD, ("numbers", "sync"), ("run",)):
        result = invoke(config, *args, ok=False)
        assert (
            f"database {tmpfs / 'ctm.db'} cannot be written: it is on a read-only file system"
            in (result.output)
        )


def test_an_immutable_file_reads_and_refuses_writes(tmp_path: Path) -> None:
    root_or_skip("chattr +i")
    db = tmp_path / "ctm.db"
    config = write_config(tmp_path, db)
    invoke(config, "db", "migrate")
    marked = subprocess.run(["chattr", "+i", str(db)], capture_output=True, text=True)
    if marked.returncode != 0:
        pytest.skip(f"this file system has no immutable attribute: {marked.stderr.strip()}")
    try:
        assert "+13125550160" in invoke(config, "numbers", "list").output
        for args in (ADD, ("numbers", "release", "+13125550160"), ("db", "migrate")):
            result = invoke(config, *args, ok=False)
            assert "cannot be written: the system does not permit it (an immutable file?" in (
                result.output
            )
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)


def test_a_full_disk_during_db_migrate(tmpfs: Path, tmp_path: Path) -> None:
    db = tmpfs / "ctm.db"
    config = write_config(tmp_path, db)
    filler = tmpfs / "filler"
    free = os.statvfs(tmpfs).f_bavail * os.statvfs(tmpfs).f_frsize
    filler.write_bytes(b"\0" * (free - 160 * 1024))  # room for a few migrations, not all
    result = invoke(config, "db", "migrate", ok=False)
    assert f"database {db}: the disk is full; applied m001_inventory" in result.output
    assert "was rolled back: fix that and run 'ctm-pbx db migrate' again" in result.output
    filler.unlink()
    assert "applied" in invoke(config, "db", "migrate").output
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()


def test_a_missing_config_file_says_no_such_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    for args in (("numbers", "list"), ("config", "check"), ("db", "migrate")):
        result = invoke(missing, *args, ok=False)
        assert result.output == (
            f"Error: {missing}: no such file (give --config PATH or set CTM_PBX_CONFIG)\n"
        )
    result = CliRunner().invoke(main, ["config", "check", str(missing)])
    assert result.exit_code == 1 and "no such file" in result.output
    assert "invalid configuration" not in result.output


@pytest.mark.parametrize(
    ("number", "words"),
    [
        ("abc", "'abc' is not a phone number"),
        ("12345", "'12345' is not a valid phone number: too short for a +1 number"),
        ("+999 123", "'+999 123' is not a valid phone number: no country has the code"),
    ],
)
def test_bad_numbers_are_said_in_our_words(tmp_path: Path, number: str, words: str) -> None:
    config = write_config(tmp_path, tmp_path / "ctm.db")
    invoke(config, "db", "migrate")
    result = invoke(
        config, "numbers", "add", number, "--source", "billboard", "--route", "one", ok=False
    )
    assert result.output == f"Error: {words}" + result.output.split(words, 1)[1]
    assert "The string supplied" not in result.output and "(1)" not in result.output
