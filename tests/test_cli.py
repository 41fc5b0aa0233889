"""The ctm-pbx CLI end to end on a file database (click's CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ctm_pbx.edges.cli import main
from tests.helpers import BASE

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        "database: {path: ctm.db}\n"
        + BASE
        + "pools:\n  gads: {source: google-ads}\n"
        + "tracking_numbers:\n  - {number: '+1 312 555 0160', source: billboard, route: one}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def cli(cfg: Path):
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True, input: str | None = None):
        result = runner.invoke(main, ["--config", str(cfg), *args], input=input)
        if ok:
            assert result.exit_code == 0, result.output
        else:
            assert result.exit_code != 0, result.output
            assert "Traceback" not in result.output
        return result

    return invoke


def test_example_config_checks_ok() -> None:
    result = CliRunner().invoke(main, ["config", "check", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output


def test_config_from_environment_variable(cfg: Path) -> None:
    result = CliRunner().invoke(main, ["config", "check"], env={"CTM_PBX_CONFIG": str(cfg)})
    assert result.exit_code == 0 and str(cfg) in result.output


def test_broken_config_is_one_clear_report(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes:\n  x: {type: single, targets: [nobody]}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["config", "check", str(bad)])
    assert result.exit_code == 1
    assert "routes.x.targets[0]" in result.output and ":2:" in result.output
    assert "Traceback" not in result.output


def test_unreadable_config(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--config", str(tmp_path / "nope.yaml"), "numbers", "list"])
    assert result.exit_code == 1 and "nope.yaml" in result.output


def test_number_lifecycle(cli) -> None:
    out = cli("db", "migrate").output
    assert "applied m001_inventory" in out and "1 added" in out
    cli(
        "numbers",
        "add",
        "(312) 555-0142",
        "--source",
        "billboard",
        "--route",
        "one",
        "--label",
        "I-90",
    )
    cli("numbers", "add", "312.555.0150", "--pool", "gads", "--route", "all")
    listed = json.loads(cli("numbers", "list", "--json").stdout)
    assert [n["number"] for n in listed] == ["+13125550142", "+13125550150", "+13125550160"]
    pooled = [n for n in listed if n["pool"] == "gads"][0]
    assert pooled["source"] == "google-ads", "a pool implies its source"
    cli("numbers", "assign", "+13125550142", "--route", "seq")
    shown = json.loads(cli("numbers", "show", "+1 312 555 0142", "--json").stdout)
    assert shown["route"] == "seq" and shown["label"] == "I-90"
    assert "route:" in cli("numbers", "show", "+13125550142").output
    cli("numbers", "release", "+13125550142")
    active = json.loads(cli("numbers", "list", "--json").stdout)
    assert "+13125550142" not in [n["number"] for n in active]
    everything = json.loads(cli("numbers", "list", "--all", "--json").stdout)
    assert {n["number"]: n["status"] for n in everything}["+13125550142"] == "released"
    assert "gads" in cli("numbers", "list", "--pool", "gads").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["numbers", "add", "12345", "--source", "billboard", "--route", "one"],
            "not a valid phone number",
        ),
        (
            ["numbers", "add", "+13125550142", "--source", "radio", "--route", "one"],
            "unknown source 'radio'",
        ),
        (
            ["numbers", "add", "+13125550142", "--source", "billboard", "--route", "nowhere"],
            "unknown route 'nowhere'",
        ),
        (
            [
                "numbers",
                "add",
                "+13125550142",
                "--pool",
                "gads",
                "--source",
                "billboard",
                "--route",
                "one",
            ],
            "belongs to source 'google-ads'",
        ),
        (["numbers", "add", "+13125550142", "--route", "one"], "give --source or --pool"),
        (
            ["numbers", "add", "+13125550160", "--source", "billboard", "--route", "one"],
            "is declared in the config (tracking_numbers): change it there",
        ),
        (["numbers", "release", "+13125550160"], "declared in the config file"),
        (["numbers", "release", "+13125550199"], "not an active tracking number"),
        (["numbers", "show", "+13125550199"], "not in the inventory"),
        (["calls", "show", "999"], "no call with id 999"),
    ],
)
def test_errors_are_one_line_and_exit_non_zero(cli, args, message) -> None:
    cli("db", "migrate")
    result = cli(*args, ok=False)
    assert message in result.output
    assert result.output.strip().startswith("Error:")


def test_duplicate_add(cli) -> None:
    cli("db", "migrate")
    cli("numbers", "add", "+13125550142", "--source", "billboard", "--route", "one")
    result = cli(
        "numbers", "add", "312-555-0142", "--source", "billboard", "--route", "one", ok=False
    )
    assert "already in the inventory (added with the CLI)" in result.output


def test_csv_import_is_all_or_nothing(cli, tmp_path: Path) -> None:
    cli("db", "migrate")
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "number,source,pool,route,label\n"
        "+13125550170,billboard,,one,ok\n"
        "not-a-number,billboard,,one,\n"
        "+13125550171,,gads,all,\n"
        "+13125550172,radio,,one,\n"
        "+13125550170,billboard,,one,dup\n",
        encoding="utf-8",
    )
    result = cli("numbers", "import", str(bad), ok=False)
    assert "nothing imported, 3 bad row(s)" in result.output
    assert "line 3:" in result.output and "line 5: unknown source 'radio'" in result.output
    assert "line 6: +13125550170 already on line 2" in result.output
    listed = json.loads(cli("numbers", "list", "--json").stdout)
    assert [n["managed_by"] for n in listed] == ["config"], "only the config's number"

    good = tmp_path / "good.csv"
    good.write_text(
        "number,source,pool,route,label\n+13125550170,billboard,,one,a\n+13125550171,,gads,all,\n",
        encoding="utf-8",
    )
    assert "imported 2 number(s)" in cli("numbers", "import", str(good)).output
    assert len(json.loads(cli("numbers", "list", "--json").stdout)) == 3  # + the config one


def test_csv_import_from_stdin_and_missing_columns(cli) -> None:
    cli("db", "migrate")
    result = cli("numbers", "import", "-", input="number\n+13125550170\n", ok=False)
    assert "'number' and 'route'" in result.output
    cli("numbers", "import", "-", input="number,source,route\n+13125550170,billboard,one\n")


def test_calls_list_is_empty_then_json(cli) -> None:
    cli("db", "migrate")
    assert "no calls" in cli("calls", "list").output
    assert json.loads(cli("calls", "list", "--json").stdout) == []


def _commands(group: click.Group, prefix=()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # the lazy group imports each command here
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


@pytest.mark.parametrize("path", [p for p, _ in _commands(main)], ids=lambda p: " ".join(p))
def test_every_command_has_help_with_an_example(path) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and "ctm-pbx" in result.output
