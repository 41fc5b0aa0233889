"""Google Ads click conversions: ``ctm-pbx ads export --csv`` and the dashboard's feed
for scheduled uploads (secret URL, basic auth), the same file either way."""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from ctm_pbx.adapters.config_loader import ConfigError, load_config, parse_config
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store import open_db
from ctm_pbx.adapters.store.reader import StoreReader
from ctm_pbx.adapters.store.schema import migrate
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.edges.cli import main
from ctm_pbx.edges.dashboard import Dashboard, create_dashboard_app
from tests.helpers import BASE
from tests.outbox_helpers import finish, start_call

TOKEN = "0123456789abcdef0123456789abcdef"
ADS = f"""
reports: {{time_zone: America/Chicago, qualified_min_talk_seconds: 30}}
google_ads:
  conversion_name: Phone call
  value: 50
  values: {{tags: {{sale: 500}}, routes: {{seq: 70}}}}
  currency: EUR
  feed_token: {TOKEN}
  feed_password: a-long-feed-password
"""
NOW = datetime.now(UTC).replace(microsecond=0)
# (minutes ago, talk seconds, click ids) -> what the file says
CALLS = [
    (300, 60.0, {"gclid": "Cj0-first"}),
    (200, 45.0, {"gbraid": "0AAAA-app"}),
    (150, 90.0, {"gclid": "Cj0-both", "wbraid": "web-ignored"}),
    (120, 50.0, {"wbraid": "web-only"}),
    (100, 10.0, {"gclid": "Cj0-too-short"}),  # not qualified
    (90, 120.0, {}),  # no Google click
    (80, 120.0, {"fbclid": "facebook"}),  # not Google's
]


SOLD = 2  # tagged "sale" on the dashboard: its own value


@pytest.fixture
def setup(tmp_path: Path) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"database: {{path: {tmp_path / 'ctm.db'}}}\n" + ADS + BASE)
    db = open_db(tmp_path / "ctm.db")
    migrate(db)
    for i, (ago, talk, ids) in enumerate(CALLS):
        end = NOW - timedelta(minutes=ago)
        start = end - timedelta(seconds=talk + 5)
        with db.conn:
            call_id = call_store.insert_call(
                db, start_call(start), channel_id=f"c{i}", linkedid=None
            )
            call_store.finish_call(db, call_id, finish(end, talk))
            db.execute(
                "UPDATE calls SET click_ids_json = ? WHERE id = ?", [json.dumps(ids), call_id]
            )
            if i == SOLD:
                db.execute("UPDATE calls SET tags = ',sale,' WHERE id = ?", [call_id])
    db.conn.close()
    return cfg


def expected_rows() -> list[list[str]]:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("America/Chicago")
    rows = []
    for i, (ago, talk, ids) in enumerate(CALLS):
        if talk < 30 or not ({"gclid", "gbraid", "wbraid"} & ids.keys()):
            continue
        start = NOW - timedelta(minutes=ago) - timedelta(seconds=talk + 5)
        gclid = ids.get("gclid", "")
        gbraid = "" if gclid else ids.get("gbraid", "")
        wbraid = "" if gclid or gbraid else ids.get("wbraid", "")
        when = start.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
        value = "500.00" if i == SOLD else "50.00"
        rows.append([gclid, gbraid, wbraid, "Phone call", when, value, "EUR"])
    return rows


def test_the_export_is_googles_click_conversion_template(setup: Path) -> None:
    before = (setup.parent / "ctm.db").read_bytes()
    result = CliRunner().invoke(main, ["--config", str(setup), "ads", "export", "--csv"])
    assert result.exit_code == 0, result.output
    assert (setup.parent / "ctm.db").read_bytes() == before, "the export only reads"
    lines = list(csv.reader(io.StringIO(result.output)))
    assert lines[0] == ["Parameters:TimeZone=America/Chicago"]
    assert lines[1] == [
        "Google Click ID", "GBRAID", "WBRAID", "Conversion Name", "Conversion Time",
        "Conversion Value", "Conversion Currency",
    ]  # fmt: skip
    assert lines[2:] == expected_rows()
    assert len(lines[2:]) == 4, "qualified calls with one Google click id, each once"


def test_since_limits_the_export_by_conversion_time(setup: Path) -> None:
    since = (NOW - timedelta(minutes=160)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    args = ["--config", str(setup), "ads", "export", "--since", since, "--csv"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert list(csv.reader(io.StringIO(result.output)))[2:] == expected_rows()[2:]


def test_export_without_a_google_ads_section_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"database: {{path: {tmp_path / 'ctm.db'}}}\n" + BASE)
    migrate(open_db(tmp_path / "ctm.db"))
    result = CliRunner().invoke(main, ["--config", str(cfg), "ads", "export", "--csv"])
    assert result.exit_code == 1 and "no google_ads section" in result.output


def test_a_feed_token_needs_a_password_and_says_where(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"google_ads:\n  conversion_name: Call\n  feed_token: {TOKEN}\n")
    with pytest.raises(ConfigError, match=r"c.yaml:3: google_ads.feed_token: .*feed_password"):
        load_config(cfg)
    with pytest.raises(ConfigError, match=r":3: google_ads.currency: .*ISO 4217"):
        parse_config("google_ads:\n  conversion_name: Call\n  currency: dollars\n")


def _auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def test_the_feed_serves_the_same_file_behind_basic_auth(setup: Path, aiohttp_client):
    cfg = load_config(setup)
    writer = StoreWriter(cfg.database.path)
    reader = StoreReader(cfg.database.path)
    try:
        client = await aiohttp_client(create_dashboard_app(Dashboard(cfg, reader, writer)))
        assert (await client.get(f"/ads/{TOKEN}.csv")).status == 401
        wrong = await client.get(f"/ads/{TOKEN}.csv", headers=_auth("google-ads", "nope"))
        assert wrong.status == 401 and "Basic" in wrong.headers["WWW-Authenticate"]
        guess = await client.get("/ads/" + "f" * 32 + ".csv", headers=_auth("google-ads", "x"))
        assert guess.status == 404, "a wrong token says nothing"
        auth = _auth("google-ads", "a-long-feed-password")
        first = await client.get(f"/ads/{TOKEN}.csv", headers=auth)
        assert first.status == 200 and first.content_type == "text/csv"
        body = await first.text()
        again = await (await client.get(f"/ads/{TOKEN}.csv", headers=auth)).text()
        assert body == again, "fetching again gives the same rows: nothing imported twice"
        cli = CliRunner().invoke(main, ["--config", str(setup), "ads", "export", "--csv"])
        assert body == cli.output, "the same file as the CLI's"
        # the session login does not guard it, and it guards nothing else
        assert (await client.get("/", allow_redirects=False)).status == 303
    finally:
        reader.close()
        writer.close()
