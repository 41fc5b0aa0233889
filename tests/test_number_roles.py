"""One number, one role: the YAML loader and the CLI refuse the same numbers in the same words.

A receiving number used as a tracking number makes its route dial itself (a call
loop); a target number (the site's own) would credit every call to one source.
Also: commands that are given nothing to do, or names that do not exist, say so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ctm_pbx.adapters.config_loader import ConfigError, parse_config
from ctm_pbx.edges.cli import main
from tests.helpers import BASE

TARGETS = "targets:\n  main: '+1 312 555 0100'\n"
RECEIVING_CLASH = (
    "+13125550101 is receiving number 'desk-1': its route would dial it back out through"
    " the trunk and ring itself (a call loop)"
)
TARGET_CLASH = (
    "+13125550100 is target number 'main', the site's own number: every call to it would"
    " be credited to this one source"
)
CASES = [("+1 312 555 0101", RECEIVING_CLASH), ("(312) 555-0100", TARGET_CLASH)]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        "database: {path: ctm.db}\n" + BASE + TARGETS + "pools:\n  gads: {source: google-ads}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def cli(config: Path):
    def invoke(*args: str, ok: bool = True):
        result = CliRunner().invoke(main, ["--config", str(config), *args])
        if ok:
            assert result.exit_code == 0, result.output
        else:
            assert result.exit_code == 1, result.output
            assert isinstance(result.exception, SystemExit), result.exception
            assert "\nError: " in "\n" + result.output
        return result

    invoke("db", "migrate")
    return invoke


@pytest.mark.parametrize(("number", "message"), CASES)
def test_the_yaml_loader_refuses_a_number_with_another_role(number: str, message: str) -> None:
    decl = f"tracking_numbers:\n  - {{number: '{number}', source: billboard, route: one}}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + TARGETS + decl, env={})
    assert [e.path for e in caught.value.errors] == ["tracking_numbers[0].number"]
    assert message in caught.value.errors[0].message


@pytest.mark.parametrize(("number", "message"), CASES)
def test_numbers_add_refuses_it_in_the_same_words(cli, number: str, message: str) -> None:
    result = cli("numbers", "add", number, "--source", "billboard", "--route", "one", ok=False)
    assert result.output == f"Error: {message}\n"
    assert json.loads(cli("numbers", "list", "--json").stdout) == []


@pytest.mark.parametrize(("number", "message"), CASES)
def test_numbers_import_refuses_it_too(cli, tmp_path: Path, number: str, message: str) -> None:
    csv = tmp_path / "n.csv"
    csv.write_text(
        f'number,source,route\n+13125550170,billboard,one\n"{number}",billboard,one\n',
        encoding="utf-8",
    )
    result = cli("numbers", "import", str(csv), ok=False)
    assert f"line 3: {message}" in result.output and "nothing imported" in result.output


def test_config_check_checks_the_numbers_added_with_the_cli(cli, config: Path) -> None:
    cli("numbers", "add", "+13125550170", "--source", "billboard", "--route", "one")
    cli("numbers", "add", "+13125550171", "--pool", "gads", "--route", "all")
    assert "2 numbers added with the CLI fit the config" in cli("config", "check").output
    text = config.read_text(encoding="utf-8")
    text = text.replace(  # the first became a desk's number; the route 'all' is gone
        '  mobile: {number: "+13125550109"}', '  mobile: {number: "+13125550170"}'
    ).replace(
        "  all: {type: simultaneous, targets: [desk-1, desk-2, desk-3], ring_timeout: 15}\n", ""
    )
    config.write_text(text, encoding="utf-8")
    result = cli("config", "check", ok=False)
    assert "2 number(s) added with the CLI do not fit this config" in result.output
    assert "+13125550170 (added with the CLI): +13125550170 is receiving number 'mobile'" in (
        result.output
    )
    assert "+13125550171 (added with the CLI): unknown route 'all'" in result.output


def test_assign_with_nothing_to_change_is_an_error(cli) -> None:
    cli("numbers", "add", "+13125550170", "--source", "billboard", "--route", "one")
    bare = cli("numbers", "assign", "+13125550170", ok=False)
    assert "nothing to change: give --source, --pool, --route or --label" in bare.output
    same = cli("numbers", "assign", "+13125550170", "--route", "one", ok=False)
    assert "already has source billboard, pool -, route one" in same.output
    assert "nothing changed" in same.output
    cli("numbers", "assign", "+13125550170", "--route", "all")


@pytest.mark.parametrize(
    ("option", "value", "known"),
    [
        ("--pool", "nope", "known: gads"),
        ("--source", "nope", "known: billboard, google-ads"),
        ("--route", "nope", "known: all, one, rr"),
    ],
)
def test_numbers_list_with_an_unknown_name_is_an_error(cli, option, value, known) -> None:
    result = cli("numbers", "list", option, value, ok=False)
    assert f"unknown {option[2:]} '{value}' ({known}" in result.output
    assert "no tracking numbers" in cli("numbers", "list", "--pool", "gads").output


def test_calls_list_takes_every_outcome_and_known_sources_only(cli) -> None:
    assert json.loads(cli("calls", "list", "--outcome", "voicemail", "--json").stdout) == []
    assert "unknown source 'nope'" in cli("calls", "list", "--source", "nope", ok=False).output
    cli("calls", "list", "--source", "billboard")
