"""`ctm-pbx pools list|stats|advise` on a database with real visits and leases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from ctm_pbx.adapters.config_loader import load_config
from ctm_pbx.adapters.store import migrate, open_db
from ctm_pbx.adapters.visits import VisitRequest, handle_visit
from ctm_pbx.core.clock import iso
from ctm_pbx.edges.cli import main, sync_config_numbers
from tests.helpers import BROWSER_UA
from tests.test_web_api import CONFIG


def test_pools_commands(tmp_path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("database: {path: ctm.db}\n" + CONFIG, encoding="utf-8")
    cfg = load_config(path)
    db = open_db(cfg.database.path)
    migrate(db)
    sync_config_numbers(cfg, db)
    now = datetime.now(UTC) - timedelta(seconds=5)  # leases not yet confirmed live 60 s
    for i in range(3):  # two numbers, three visitors: one share
        with db.conn:
            handle_visit(
                db,
                cfg,
                VisitRequest(None, f"https://shop.example.com/?gclid={i}", user_agent=BROWSER_UA),
                now,
            )
    db.conn.close()
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(main, ["--config", str(path), "pools", *args])
        assert result.exit_code == 0, result.output
        return result

    listed = json.loads(run("list", "--json").stdout)
    assert listed[0]["pool"] == "gads" and len(listed[0]["numbers"]) == 2
    stats = json.loads(run("stats", "--json").stdout)[0]
    assert stats["held"] == 2 and stats["active_leases"] == 3 and stats["shares_total"] == 2
    assert stats["peak_concurrent"] == 3 and stats["utilisation"] == 1.0
    assert stats["shared_share_7d"] == round(2 / 3, 4) and stats["leases_7d"] == 3
    assert stats["daily_visitors_7d"] > 3, "three visitors in the last hour are not a 7-day mean"
    assert "saw their number open in another visitor's browser" in run("stats").stdout
    advice = json.loads(run("advise", "--json").stdout)[0]
    assert advice["ctm_rule"] >= 1 and advice["recommended"] >= advice["by_peak"]
    assert "recommended" in run("advise").stdout
    bad = runner.invoke(
        main, ["--config", str(path), "pools", "advise", "--share-probability", "2"]
    )
    assert bad.exit_code == 1 and "between 0 and 1" in bad.output
    sized = json.loads(run("advise", "--accuracy", "0.9", "--json").stdout)[0]["targets"]
    assert (
        sized["accuracy"]["size"] is None
        and "no stored visits or calls" in (sized["accuracy"]["explanation"])
    )
    bad = runner.invoke(main, ["--config", str(path), "pools", "advise", "--same-day", "1.5"])
    assert bad.exit_code == 1 and "--same-day must be between 0 and 1" in bad.output


def test_accuracy_report_per_pool(tmp_path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("database: {path: ctm.db}\n" + CONFIG, encoding="utf-8")
    cfg = load_config(path)
    db = open_db(cfg.database.path)
    migrate(db)
    sync_config_numbers(cfg, db)
    now = datetime.now(UTC) - timedelta(minutes=5)
    for i in range(3):
        landing = f"https://shop.example.com/?gclid={i}"
        with db.conn:
            handle_visit(db, cfg, VisitRequest(None, landing, user_agent=BROWSER_UA), now)
    with db.conn:
        for confidence in (0.95, 0.5):
            db["calls"].insert({"status": "completed", "started_at": iso(now), "pool": "gads",
                                "tracking_number": "+13125550150", "outcome": "answered",
                                "attribution_confidence": confidence})  # fmt: skip
    db.conn.close()
    result = CliRunner().invoke(
        main, ["--config", str(path), "report", "accuracy", "--since", "7d", "--json"]
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["pools"]
    assert (row["pool"], row["size"], row["calls"], row["peak_pages_open"]) == ("gads", 2, 2, 3)
    assert row["avg_confidence"] == 0.725 and row["confident_share"] == 0.5
    assert row["share_rate"] == round(2 / 3, 4)
    assert row["verdict"].startswith("no size to advise for gads")
    text = CliRunner().invoke(main, ["--config", str(path), "report", "accuracy"]).output
    assert "gads: 2 numbers" in text and "72 %" in text and "50 % at >= 0.9" in text


@pytest.mark.parametrize(
    ("size", "advised", "expected"),
    [
        (10, 14, "add 4 numbers to gads to reach 90% confident calls (why)"),
        (10, 11, "add 1 number to gads to reach 90% confident calls (why)"),
        (10, 10, "gads is the right size for 90% confident calls (why)"),
        (10, 6, "gads reaches 90% confident calls with 6 of its 10 numbers (why)"),
        (10, None, "no size to advise for gads: why"),
    ],
)
def test_accuracy_verdict_in_plain_words(size, advised, expected) -> None:
    from ctm_pbx.adapters.pool_accuracy import verdict

    assert verdict("gads", size, advised, 0.9, "why") == expected
