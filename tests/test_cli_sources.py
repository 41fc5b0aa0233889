"""``ctm-pbx sources list`` and ``sources explain`` (click's CliRunner, no database)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ctm_pbx.edges.cli import main

SOURCES = """\
database: {path: ctm.db}
sources:
  google-ads: {preset: google_ads, last_touch: true}
  google-organic: {preset: google_organic}
  facebook: {preset: facebook, label: "Facebook & Instagram"}
  email: {preset: email, priority: 28}
  referral: {preset: referral}
  direct: {preset: direct}
  billboard: {kind: offsite, label: "Billboard on I-90"}
  coupon:
    kind: onsite
    priority: 95
    match:
      - landing_params: {coupon: "*"}
      - landing_regex: "/coupons/"
"""


@pytest.fixture
def cli(tmp_path: Path):
    runner = CliRunner()

    def invoke(*args: str, config: str = SOURCES, ok: bool = True):
        path = tmp_path / "config.yaml"
        path.write_text(config, encoding="utf-8")
        result = runner.invoke(main, ["--config", str(path), *args])
        if ok:
            assert result.exit_code == 0, result.output
        else:
            assert result.exit_code != 0, result.output
            assert "Traceback" not in result.output
        return result

    return invoke


def test_list_is_sorted_by_priority(cli) -> None:
    out = cli("sources", "list").output
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "KIND", "PRIORITY"]
    names = [line.split()[0] for line in lines[1:]]
    assert names == [
        "google-ads",
        "facebook",
        "email",
        "google-organic",
        "billboard",
        "referral",
        "coupon",
        "direct",
    ]
    ads = lines[1].split()
    assert ads[:6] == ["google-ads", "onsite", "10", "google_ads", "yes", "5"]
    assert "Google Ads" in lines[1]
    assert "offsite" in out and "Billboard on I-90" in out


def test_list_json(cli) -> None:
    rows = json.loads(cli("sources", "list", "--json").stdout)
    assert [r["name"] for r in rows][:3] == ["google-ads", "facebook", "email"]
    by_name = {r["name"]: r for r in rows}
    assert by_name["email"] == {
        "name": "email",
        "kind": "onsite",
        "priority": 28,
        "preset": "email",
        "last_touch": False,
        "label": "Email",
        "rules": 3,
    }
    assert by_name["billboard"]["rules"] == 0 and by_name["billboard"]["kind"] == "offsite"
    assert by_name["coupon"]["preset"] is None and by_name["coupon"]["priority"] == 95


def test_list_without_sources(cli) -> None:
    assert "no sources configured" in cli("sources", "list", config="web: {port: 8081}\n").output
    assert json.loads(cli("sources", "list", "--json", config="").stdout) == []


def test_explain_shows_winner_rule_phase_and_the_others(cli) -> None:
    out = cli(
        "sources",
        "explain",
        "--landing",
        "https://www.example.com/?gclid=abc&utm_source=google",
        "--referrer",
        "https://www.google.com/",
    ).output
    assert "source:   google-ads" in out
    assert "rule:     click id gclid" in out
    assert "phase:    landing" in out
    assert "click id gclid, utm_source=google" in out, "what the visit carried"
    others = out.split("also matched:")[1]
    assert "google-organic" in others and "referrer matches" in others
    assert "referral" in others and "priority 90" in others
    assert "referrer phase comes after landing phase" in others


def test_explain_landing_beats_referrer_at_worse_priority(cli) -> None:
    out = cli(
        "sources",
        "explain",
        "--landing",
        "https://www.example.com/?coupon=SPRING",
        "--referrer",
        "https://www.google.co.uk/",
    ).output
    assert "source:   coupon" in out and "coupon present" in out


def test_explain_json(cli) -> None:
    data = json.loads(
        cli(
            "sources",
            "explain",
            "--landing",
            "https://www.example.com/coupons/?coupon=1&fbclid=IwAR",
            "--referrer",
            "https://l.facebook.com/",
            "--json",
        ).stdout
    )
    assert (data["source"], data["rule"], data["phase"]) == (
        "facebook",
        "click id fbclid",
        "landing",
    )
    matches = [(m["source"], m["phase"], m["priority"], m["winner"]) for m in data["matches"]]
    assert matches == [
        ("facebook", "landing", 20, True),
        ("coupon", "landing", 95, False),
        ("referral", "referrer", 90, False),
    ]
    assert data["matches"][1]["lost_because"] == "priority 95 is after 20"
    assert data["matches"][0]["lost_because"] is None
    assert data["visit"]["click_ids"] == ["fbclid"]
    assert data["visit"]["params"] == {"coupon": "1", "fbclid": "IwAR"}
    assert data["visit"]["external_referrer"] is True


def test_explain_direct_and_same_site(cli) -> None:
    out = cli("sources", "explain", "--landing", "https://www.example.com/").output
    assert "source:   direct" in out and "rule:     no referrer" in out
    assert "referrer: none" in out and "also matched: none" in out
    out = cli(
        "sources",
        "explain",
        "--landing",
        "https://example.com/pricing",
        "--referrer",
        "https://www.example.com/",
    ).output
    assert "(same site)" in out and "rule:     same-site referrer" in out


def test_explain_no_match_exits_zero(cli) -> None:
    config = "sources:\n  ads: {preset: google_ads}\n"
    out = cli("sources", "explain", "--landing", "https://www.example.com/", config=config).output
    assert "no source matched" in out
    data = json.loads(
        cli("sources", "explain", "--landing", "https://x.example/", "--json", config=config).stdout
    )
    assert data["source"] is None and data["matches"] == [] and data["phase"] == "none"


def test_explain_garbage_urls(cli) -> None:
    out = cli(
        "sources", "explain", "--landing", "not a url", "--referrer", "javascript:alert(1)"
    ).output
    assert "landing:  unreadable" in out
    assert "referrer: unreadable, treated as none" in out
    assert "source:   direct" in out


def test_explain_needs_a_landing_url(cli) -> None:
    result = cli("sources", "explain", ok=False)
    assert "--landing" in result.output


def test_broken_config_is_a_clear_error(cli) -> None:
    result = cli("sources", "list", config="sources:\n  x: {preset: nope}\n", ok=False)
    assert "unknown preset 'nope'" in result.output


@pytest.mark.parametrize("command", [["sources"], ["sources", "list"], ["sources", "explain"]])
def test_help_has_an_example(command) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and "ctm-pbx sources" in result.output
