"""`ctm-pbx pools list|stats|advise` on a database with real visits and leases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from ctm_pbx.adapters.config_loader import load_config
from ctm_pbx.adapters.store import migrate, open_db
from ctm_pbx.adapters.visits import VisitRequest, handle_visit
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
    assert stats["held"] == 2 and stats["active_leases"] == 3 and stats["shares_total"] == 1
    assert stats["peak_concurrent"] == 3 and stats["utilisation"] == 1.0
    advice = json.loads(run("advise", "--json").stdout)[0]
    assert advice["ctm_rule"] >= 1 and advice["recommended"] >= advice["by_peak"]
    assert "recommended" in run("advise").stdout
    bad = runner.invoke(
        main, ["--config", str(path), "pools", "advise", "--share-probability", "2"]
    )
    assert bad.exit_code == 1 and "between 0 and 1" in bad.output
