"""Commands that only read change nothing; only db migrate, numbers sync and run sync.

A wrong ``--config`` (one declaring fewer numbers) used to release the missing
numbers on any command, and a typo in ``database.path`` created a new database.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from ctm_pbx.adapters.store import open_db
from ctm_pbx.adapters.store.schema import migrations
from ctm_pbx.edges.cli import main
from tests.helpers import BASE

NUMBERS = [f"+1312555016{i}" for i in range(4)]


def declared(numbers: list[str]) -> str:
    return "tracking_numbers:\n" + "".join(
        f"  - {{number: '{n}', source: billboard, route: one}}\n" for n in numbers
    )


DECLARED = declared(NUMBERS)


def write_config(
    path: Path, *, db: str = "ctm.db", numbers: str = DECLARED, extra: str = "", top: str = ""
) -> Path:
    path.write_text(
        f"database: {{path: {db}{extra}}}\n"
        + top
        + BASE
        + "pools:\n  gads: {source: google-ads}\n"
        + numbers,
        encoding="utf-8",
    )
    return path


def invoke(config: Path, *args: str, ok: bool = True):
    result = CliRunner().invoke(main, ["--config", str(config), *args])
    if ok:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit), result.exception
        assert "\nError: " in "\n" + result.output, result.output
    return result


def active(db_path: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT number FROM tracking_numbers WHERE status = 'active' ORDER BY number"
        )
        return [number for (number,) in rows]
    finally:
        conn.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


READ_COMMANDS = [
    ("calls", "list"),
    ("calls", "list", "--json"),
    ("calls", "show", "1"),
    ("numbers", "list"),
    ("numbers", "list", "--all", "--json"),
    ("numbers", "show", NUMBERS[0]),
    ("numbers", "sync", "--dry-run"),
    ("pools", "list"),
    ("pools", "stats"),
    ("pools", "advise"),
    ("webhooks", "list"),
    ("webhooks", "show", "crm", "--json"),
    ("config", "check"),
]


@pytest.mark.parametrize("args", READ_COMMANDS, ids=" ".join)
def test_read_commands_with_a_wrong_config_change_nothing(tmp_path: Path, args) -> None:
    invoke(write_config(tmp_path / "right.yaml"), "db", "migrate")
    wrong = write_config(tmp_path / "wrong.yaml", numbers="")  # declares none of the four
    db_path = tmp_path / "ctm.db"
    before = digest(db_path)
    result = CliRunner().invoke(main, ["--config", str(wrong), *args])
    assert isinstance(result.exception, SystemExit | None), result.exception
    assert result.exit_code == (1 if args == ("calls", "show", "1") else 0), result.output
    assert active(db_path) == NUMBERS, "no number released"
    assert digest(db_path) == before, "the database file is byte for byte the same"


def test_read_commands_refuse_to_write_even_by_accident(tmp_path: Path) -> None:
    """The read-only connection itself refuses writes (mode=ro, query_only)."""
    from ctm_pbx.adapters.store import open_readonly

    invoke(write_config(tmp_path / "c.yaml"), "db", "migrate")
    database = open_readonly(tmp_path / "ctm.db")
    with pytest.raises(Exception, match="readonly|read-only"):
        database.conn.execute("DELETE FROM tracking_numbers")
    database.conn.close()
    assert active(tmp_path / "ctm.db") == NUMBERS


NEEDS_DB = [
    *READ_COMMANDS[:-1],
    ("numbers", "add", "+13125550170", "--source", "billboard", "--route", "one"),
    ("numbers", "import", "numbers.csv"),
    ("numbers", "assign", NUMBERS[0], "--route", "all"),
    ("numbers", "release", NUMBERS[0]),
    ("numbers", "sync"),
]


@pytest.mark.parametrize("args", NEEDS_DB, ids=" ".join)
def test_a_missing_database_is_an_error_and_is_not_created(tmp_path: Path, args) -> None:
    (tmp_path / "numbers.csv").write_text(
        "number,source,route\n+13125550170,billboard,one\n", encoding="utf-8"
    )
    config = write_config(tmp_path / "c.yaml", db="typo/ctm.db")
    args = [str(tmp_path / a) if a == "numbers.csv" else a for a in args]
    result = invoke(config, *args, ok=False)
    assert f"no database at {tmp_path / 'typo' / 'ctm.db'}" in result.output
    assert "db migrate" in result.output
    assert not (tmp_path / "typo").exists(), "neither the database nor its folder created"


def test_config_check_without_a_database_says_so_and_creates_nothing(tmp_path: Path) -> None:
    result = invoke(write_config(tmp_path / "c.yaml", db="typo/ctm.db"), "config", "check")
    assert "not created yet" in result.output
    assert not (tmp_path / "typo").exists()


def test_db_migrate_creates_the_database_and_says_so(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", db="data/ctm.db")
    out = invoke(config, "db", "migrate").output
    assert f"created folder {tmp_path / 'data'}" in out
    assert f"created database {tmp_path / 'data' / 'ctm.db'} (mode 0600)" in out
    again = invoke(config, "db", "migrate").output
    assert "created" not in again and "schema up to date" in again


def test_a_sync_lists_what_it_releases(tmp_path: Path) -> None:
    invoke(write_config(tmp_path / "c.yaml"), "db", "migrate")
    fewer = write_config(tmp_path / "fewer.yaml", numbers=declared(NUMBERS[:3]))
    out = invoke(fewer, "numbers", "sync").output  # 1 of 4: 25%, the default limit
    assert f"1 released ({NUMBERS[3]}: calls to them are no longer routed)" in out
    assert active(tmp_path / "ctm.db") == NUMBERS[:3]


# Should run ever get past the sync here, its daemon cannot start: no Asterisk on
# port 9, and the web listener's address (TEST-NET-1) is not this machine's.
NOWHERE = "asterisk: {ari_url: 'http://127.0.0.1:9'}\nweb: {host: 192.0.2.1, port: 9}\n"


def run_command(config: Path, *args: str) -> subprocess.CompletedProcess:
    """``ctm-pbx run`` in a process of its own, killed if it is still running after 60 s."""
    return subprocess.run(
        [sys.executable, "-m", "ctm_pbx", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("command", [("db", "migrate"), ("numbers", "sync"), ("run",)])
def test_a_sync_releasing_too_many_is_refused_without_force(tmp_path: Path, command) -> None:
    invoke(write_config(tmp_path / "c.yaml"), "db", "migrate")
    wrong = write_config(tmp_path / "wrong.yaml", numbers=declared(NUMBERS[:1]), top=NOWHERE)
    if command == ("run",):
        done = run_command(wrong, *command)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        result = SimpleNamespace(output=done.stderr)
    else:
        result = invoke(wrong, *command, ok=False)
    assert "no longer declares 3 of the 4 numbers it declared (75%" in result.output
    assert "max_release_percent: 25%" in result.output
    assert all(n in result.output for n in NUMBERS[1:]), "it names them"
    assert "--force" in result.output
    assert active(tmp_path / "ctm.db") == NUMBERS, "run refused before the daemon started"


def test_force_releases_them_and_the_limit_is_configurable(tmp_path: Path) -> None:
    invoke(write_config(tmp_path / "c.yaml"), "db", "migrate")
    none = write_config(tmp_path / "none.yaml", numbers="")
    dry = invoke(none, "numbers", "sync", "--dry-run").output
    assert "dry run, nothing changed" in dry and "4 to release" in dry
    assert "refused without --force" in dry
    assert active(tmp_path / "ctm.db") == NUMBERS
    invoke(none, "numbers", "sync", "--force")
    assert active(tmp_path / "ctm.db") == []
    invoke(write_config(tmp_path / "c.yaml"), "numbers", "sync")
    loose = write_config(tmp_path / "loose.yaml", numbers="", extra=", max_release_percent: 100")
    assert "4 released" in invoke(loose, "numbers", "sync").output


def test_an_older_schema_is_said_by_readers_and_refused_by_writers(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml")
    database = open_db(tmp_path / "ctm.db")
    migrations.apply(database, stop_before="m011_voicemail_outcome")
    database.conn.close()
    listed = invoke(config, "calls", "list")
    assert "no calls" in listed.stdout
    assert "schema is older than this ctm-pbx (m011_voicemail_outcome, " in listed.stderr
    assert "not applied): run 'ctm-pbx db migrate'" in listed.stderr
    add = ("numbers", "add", "+13125550170", "--source", "billboard", "--route", "one")
    refused = invoke(config, *add, ok=False)
    assert "run 'ctm-pbx db migrate' first" in refused.output
    assert "applied m011_voicemail_outcome" in invoke(config, "db", "migrate").output
    invoke(config, *add)


def test_changing_commands_sync_nothing_either(tmp_path: Path) -> None:
    """numbers add/release with a wrong config change only what they were asked to."""
    invoke(write_config(tmp_path / "c.yaml"), "db", "migrate")
    wrong = write_config(tmp_path / "wrong.yaml", numbers="")
    invoke(wrong, "numbers", "add", "+13125550170", "--source", "billboard", "--route", "one")
    listed = json.loads(invoke(wrong, "numbers", "list", "--json").stdout)
    assert [n["number"] for n in listed] == [*NUMBERS, "+13125550170"]
