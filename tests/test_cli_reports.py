"""``ctm-pbx report …`` on a seeded call log: tables, JSON, CSV, zones, filters, errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ctm_pbx.adapters.store import migrate, open_db
from ctm_pbx.edges.cli import main
from tests.helpers import BASE
from tests.test_store_reports import CALLS


@pytest.fixture
def cli(tmp_path: Path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "database: {path: ctm.db}\nreports: {time_zone: America/Chicago}\n" + BASE,
        encoding="utf-8",
    )
    db = open_db(tmp_path / "ctm.db")
    migrate(db)
    for started, fields in CALLS:
        row = {"status": "completed", "started_at": started, **fields}
        row.setdefault("tracking_number", "+13125550100")
        db["calls"].insert(row)
    db.conn.close()
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True):
        result = runner.invoke(main, ["--config", str(cfg), "report", *args])
        assert (result.exit_code == 0) is ok, result.output
        assert "Traceback" not in result.output
        return result.output

    return invoke


DEC = ("--since", "2026-12-01", "--until", "2026-12-02")


def test_sources_table_for_people(cli):
    out = cli("sources", *DEC).splitlines()
    assert out[0] == (
        "Calls by source, 2026-12-01 – 2026-12-02 (America/Chicago); "
        "change against 2026-11-29 – 2026-11-30"
    )
    assert out[1].split()[:3] == ["SOURCE", "CALLS", "CHANGE"]
    rows = {line.split()[0]: line.split() for line in out[2:]}
    assert rows["billboard"][1] == "2" and rows["facebook"][1] == "1"
    # TOTAL: 5 calls, new (no calls in the two days before), 2 answered, 40 %
    assert rows["TOTAL"][1:6] == ["5", "new", "2", "40", "%"]


def test_json_has_every_metric(cli):
    data = json.loads(cli("campaigns", *DEC, "--json"))
    assert data["dimension"] == "campaign" and data["time_zone"] == "America/Chicago"
    total = data["rows"][-1]
    assert total["key"] == "TOTAL" and total["calls"] == 5 and total["qualified"] == 1
    assert {r["key"]: r["calls"] for r in data["rows"][:-1]} == {None: 3, "winter": 2}


def test_reports_filter_by_tag(cli, tmp_path):
    db = open_db(tmp_path / "ctm.db")
    with db.conn:
        db.execute("UPDATE calls SET tags = ',lead,' WHERE source = 'billboard'")
    db.conn.close()
    data = json.loads(cli("sources", *DEC, "--tag", "lead", "--json"))
    assert {r["key"]: r["calls"] for r in data["rows"]} == {"billboard": 2, "TOTAL": 2}


def test_csv_is_one_row_per_key_and_a_total(cli):
    rows = list(csv.DictReader(io.StringIO(cli("routes", *DEC, "--csv"))))
    assert [(r["key"], r["calls"]) for r in rows] == [
        ("sales", "3"), ("support", "2"), ("TOTAL", "5")
    ]  # fmt: skip
    assert rows[-1]["answer_rate"] == "0.4"


def test_timeline_by_local_day_and_other_zones(cli):
    days = json.loads(cli("timeline", *DEC, "--json"))["rows"]
    assert [(r["key"], r["calls"]) for r in days[:-1]] == [("2026-12-01", 3), ("2026-12-02", 2)]
    utc = json.loads(cli("timeline", *DEC, "--tz", "UTC", "--json"))["rows"]
    assert [(r["key"], r["calls"]) for r in utc[:-1]] == [("2026-12-01", 2), ("2026-12-02", 3)]
    months = json.loads(cli("timeline", *DEC, "--by", "month", "--json"))["rows"]
    assert months[0]["key"] == "2026-12"


def test_hours_is_a_heat_map(cli):
    out = cli("hours", *DEC).splitlines()
    tue = next(line for line in out if line.startswith("Tue")).split()[1:]
    assert tue[9] == "1" and tue[10] == "1" and tue[23] == "1" and tue[0] == "."
    assert out[-1] == "total 5 calls"


def test_filters_narrow_the_report(cli):
    data = json.loads(cli("sources", *DEC, "--outcome", "voicemail", "--json"))
    assert data["rows"][-1]["calls"] == 1
    data = json.loads(cli("sources", *DEC, "--first-time", "--json"))
    assert data["rows"][-1]["calls"] == 3
    data = json.loads(cli("keywords", *DEC, "--number", "(312) 555-0150", "--json"))
    assert [(r["key"], r["calls"]) for r in data["rows"]] == [("plumber", 1), ("TOTAL", 1)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "fortnight"), "is not a date"),
        (("--tz", "Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
        (("--outcome", "maybe"), "Invalid value for '--outcome'"),
    ],
)
def test_bad_options_are_one_line(cli, args, message):
    assert message in cli("sources", *args, ok=False)


@pytest.fixture
def calls_cli(cli, tmp_path):
    """``ctm-pbx calls …`` on the same seeded database."""
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True):
        result = runner.invoke(main, ["--config", str(tmp_path / "config.yaml"), "calls", *args])
        assert (result.exit_code == 0) is ok, result.output
        assert "Traceback" not in result.output
        return result.output

    return invoke


@pytest.mark.parametrize(
    ("args", "ids"),
    [
        ((), [5, 4, 3, 2, 1, 6]),
        (("--since", "2026-12-02", "--until", "2026-12-02"), [5, 4]),  # Chicago's 2 December
        (("--source", "google-ads"), [2, 1, 6]),
        (("--pool", "gads"), [2, 1]),
        (("--route", "support", "--outcome", "busy"), [4]),
        (("--first-time",), [5, 2, 1, 6]),
        (("--repeat",), [4, 3]),
        (("--caller", "555-0001"), [3, 1]),
        (("--number", "(312) 555-0111"), [4, 3]),
        (("--limit", "2"), [5, 4]),
    ],
)
def test_calls_list_takes_the_report_filters(calls_cli, args, ids):
    rows = json.loads(calls_cli("list", *args, "--json"))
    assert [r["id"] for r in rows] == ids
    assert all("path" in r for r in rows)


def test_calls_list_as_csv(calls_cli):
    rows = list(csv.DictReader(io.StringIO(calls_cli("list", "--source", "billboard", "--csv"))))
    assert [(r["id"], r["outcome"]) for r in rows] == [("4", "busy"), ("3", "answered")]


def test_calls_export_writes_a_whole_period_in_batches(calls_cli, tmp_path, monkeypatch):
    from ctm_pbx.adapters.store import call_search

    monkeypatch.setattr(call_search, "EXPORT_BATCH", 2)
    out = tmp_path / "export.csv"
    calls_cli("export", "--since", "2026-11-01", "--until", "2026-12-31", "--out", str(out))
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["id"] for r in rows] == ["6", "1", "2", "3", "4", "5"]  # oldest first
    assert "utm_campaign" in rows[0] and "path_json" not in rows[0]
    text = calls_cli("export", "--since", "2026-12-01", "--until", "2026-12-01", "--repeat")
    assert [r["id"] for r in csv.DictReader(io.StringIO(text))] == ["3"]
