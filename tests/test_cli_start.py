"""A command imports only what it needs: ``config check`` and ``--help`` never load the
web stack, the dashboard's templates or the geocoder's data (they were most of their
start); the daemon still loads the geocoder's data before it takes a call."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"

# what only the daemon (and the commands that talk to the outside) need
HEAVY = (
    "aiohttp",
    "jinja2",
    "prometheus_client",
    "panoramisk",
    "uvloop",
    "zipcodes",
    "phonenumbers.geocoder",
    "ctm_pbx.edges.daemon",
    "ctm_pbx.edges.web",
    "ctm_pbx.edges.dashboard",
)

PROBE = """
import os, sys
from ctm_pbx.edges.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code or 0
print("imported:", *(m for m in os.environ["HEAVY"].split() if m in sys.modules))
sys.exit(code)
"""


def imported_heavy(tmp_path: Path, *args: str, status: int = 0) -> list[str]:
    """The ``HEAVY`` modules a fresh process has imported after ``ctm-pbx ARGS``."""
    env = {**os.environ, "HEAVY": " ".join(HEAVY), "CTM_DATABASE": str(tmp_path / "none.db")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == status, done.stderr
    last = done.stdout.splitlines()[-1].split()
    assert last[0] == "imported:", done.stdout
    return last[1:]


@pytest.mark.parametrize(
    "args",
    [
        ("--config", str(EXAMPLE), "config", "check"),
        ("--help",),
        ("db", "--help"),
        ("--config", str(EXAMPLE), "sources", "list"),
    ],
    ids=" ".join,
)
def test_a_command_that_needs_no_web_stack_does_not_import_it(tmp_path: Path, args) -> None:
    assert imported_heavy(tmp_path, *args) == []


def test_run_says_a_wrong_config_before_it_imports_the_daemon(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.yaml")
    assert imported_heavy(tmp_path, "--config", missing, "run", status=1) == []


def test_every_command_is_listed_and_loads_when_named(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ctm_pbx.edges.cli import COMMANDS, main

    listed = CliRunner().invoke(main, ["--help"]).output
    for name in (*COMMANDS, "db"):
        assert f"\n  {name} " in listed, name
    db_help = CliRunner().invoke(main, ["db", "--help"]).output
    for name in ("migrate", "purge", "backup", "restore"):
        assert f"\n  {name} " in db_help, name


def test_the_daemon_warms_the_geocoder_before_any_call() -> None:
    from ctm_pbx.core import geo

    geo.warm()
    assert "phonenumbers.geocoder" in sys.modules
    located = geo.locate_number("+13125550100")
    assert located is not None and located.region == "IL"
