"""What the page reports with its visit (issue 17 §5, issue 20): the browser's time zone and
language, Google Analytics' ids; stored, validated, and the time zone used by the scorer."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from ctm_pbx.adapters.call_attribution import attribute_call
from ctm_pbx.adapters.config_loader import parse_config
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store import migrate
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.core.attribution import (
    ZONE_MATCH,
    Evidence,
    attribute,
    zone_factors,
    zone_hours,
)
from ctm_pbx.core.call.actions import StartCall
from ctm_pbx.core.clock import iso
from ctm_pbx.core.geo import number_time_zones
from ctm_pbx.core.pools import Lease
from ctm_pbx.edges.cli import main, sync_config_numbers
from ctm_pbx.edges.web import VisitApi, create_app
from tests.helpers import BROWSER_UA
from tests.test_page_close import CONFIG, N1, SHOP

T0 = datetime(2026, 11, 28, 18, 0, tzinfo=UTC)
CHICAGO, NEW_YORK, DENVER, LA = (
    "America/Chicago",
    "America/New_York",
    "America/Denver",
    "America/Los_Angeles",
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def lease(vid: str, last: float) -> Lease:
    return Lease(vid, at(last - 5), at(last), at(last + 30), f"{vid}-v", number=N1, pool="gads")


# --- core ------------------------------------------------------------------


def test_the_caller_s_number_gives_its_time_zones() -> None:
    assert number_time_zones("+13125550100") == (CHICAGO,)
    assert number_time_zones("+12085550100") == ("America/Boise", LA)
    assert number_time_zones("+18005550100") == (), "toll-free: anywhere"
    assert number_time_zones("+12222222222") == (), "an unknown area"
    assert number_time_zones("anonymous") == () and number_time_zones(None) == ()


def test_hours_between_zones_on_the_call_s_day() -> None:
    assert zone_hours(CHICAGO, (CHICAGO,), T0) == 0
    assert zone_hours(NEW_YORK, (CHICAGO,), T0) == 1
    assert zone_hours(LA, (NEW_YORK,), T0) == 3
    assert zone_hours("Asia/Tokyo", (NEW_YORK,), T0) == 3, "capped: 3 or more"
    assert zone_hours(LA, ("America/Boise", LA), T0) == 0, "the nearest of the caller's"
    assert zone_hours("America/Phoenix", (LA,), datetime(2026, 7, 1, tzinfo=UTC)) == 0
    assert zone_hours("America/Phoenix", (LA,), T0) == 1, "daylight saving time counts"
    assert zone_hours(None, (CHICAGO,), T0) is None
    assert zone_hours(CHICAGO, (), T0) is None
    assert zone_hours("Not/AZone", (CHICAGO,), T0) is None


def test_a_zone_factor_is_a_ratio_to_how_common_that_zone_is_among_the_candidates() -> None:
    national = zone_factors({"a": 0, "b": 1, "c": 3})
    assert national["a"] > 2 and national["c"] < 0.5 and national["b"] < 1
    # a local site: everyone in the caller's zone, so the zone tells little
    local = zone_factors({f"v{i}": 0 for i in range(40)})
    assert 0.8 <= local["v0"] <= ZONE_MATCH[0] / 0.9


def test_the_scorer_prefers_the_candidate_in_the_caller_s_zone_and_says_so() -> None:
    leases = [lease("chicago", -20), lease("la", -20)]
    plain = attribute(N1, at(0), leases, 1440)
    assert plain.candidates[0].weight == pytest.approx(plain.candidates[1].weight)
    zones = {"chicago": CHICAGO, "la": LA}
    ev = Evidence(caller_zones=(CHICAGO,), visitor_zones=zones)
    got = attribute(N1, at(0), leases, 1440, ev)
    assert got.visitor_id == "chicago" and got.confidence > 2 * got.candidates[1].weight
    assert [c.zone_hours for c in got.candidates] == [0, 2]
    assert "their browser is in the time zone of the caller's number" in got.reason
    # probabilities still sum to 1 with "someone else"
    assert sum(c.weight for c in got.candidates) + got.someone_else == pytest.approx(1)
    far = attribute(
        N1, at(0), leases, 1440, Evidence(caller_zones=("Asia/Tokyo",), visitor_zones=zones)
    )
    assert "3 h or more from the caller's time zone" in far.reason
    # a visitor without a reported zone is neither helped nor hurt
    half = attribute(N1, at(0), leases, 1440, Evidence(caller_zones=(CHICAGO,), visitor_zones={}))
    assert half.candidates[0].zone_hours is None
    assert half.confidence == pytest.approx(plain.confidence)


# --- the API and the store ---------------------------------------------------


@pytest.fixture
async def site(aiohttp_client, tmp_path):
    cfg = parse_config(CONFIG, env={}, base_dir=tmp_path)
    writer = StoreWriter(str(tmp_path / "ctm.db"))
    writer.run_sync(migrate)
    writer.run_sync(lambda db: sync_config_numbers(cfg, db))
    now = [T0]
    app = create_app(dict, VisitApi(cfg, writer, clock=lambda: now[0]))
    client = await aiohttp_client(app, headers={"User-Agent": BROWSER_UA})
    yield cfg, writer, client, now
    writer.close()


async def visit(client, **fields):
    body = {"visitor_id": None, "landing_url": f"{SHOP}/?gclid=z", **fields}
    resp = await client.post("/api/visit", json=body, headers={"Origin": SHOP})
    return resp.status, await resp.json()


def stored(writer, visitor_id: str) -> dict:
    def read(db):
        cur = db.conn.execute(
            "SELECT time_zone, language, ga_client_id, ga_session_id FROM visits"
            " WHERE visitor_id = ?",
            (visitor_id,),
        )
        return dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))

    return writer.run_sync(read)


async def test_the_visit_stores_the_page_s_time_zone_language_and_ga_ids(site) -> None:
    _cfg, writer, client, now = site
    status, body = await visit(
        client,
        time_zone=CHICAGO,
        language="en-US",
        ga_client_id="1234567890.1699999999",
        ga_session_id="1700000000",
    )
    assert status == 200
    assert stored(writer, body["visitor_id"]) == {
        "time_zone": CHICAGO,
        "language": "en-US",
        "ga_client_id": "1234567890.1699999999",
        "ga_session_id": "1700000000",
    }


async def test_ga_ids_that_come_on_a_later_page_are_stored_too(site) -> None:
    """Google Analytics may set its cookies after swap.js's first visit: the next page
    (answered from memory) brings them, and a page without them keeps them."""
    _cfg, writer, client, now = site
    _, first = await visit(client, time_zone=CHICAGO, language="en-US")
    vid = first["visitor_id"]
    now[0] = at(0.2)
    await client.post("/api/renew", json={"visitor_id": vid}, headers={"Origin": SHOP})
    later = {"visitor_id": vid, "landing_url": f"{SHOP}/pricing", "referrer": f"{SHOP}/"}
    now[0] = at(1)
    await visit(client, **later, ga_client_id="11.22", ga_session_id="33")
    now[0] = at(2)
    await visit(client, **later)
    assert (
        writer.run_sync(lambda db: db.conn.execute("SELECT count(*) FROM visits").fetchone())[0]
        == 1
    )
    for _ in range(50):  # the memory writes it a moment later
        if stored(writer, vid)["ga_client_id"]:
            break
        await asyncio.sleep(0.02)
    assert stored(writer, vid) == {
        "time_zone": CHICAGO,
        "language": "en-US",
        "ga_client_id": "11.22",
        "ga_session_id": "33",
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("time_zone", "../../etc/passwd"),
        ("time_zone", "A" * 65),
        ("time_zone", 5),
        ("time_zone", "Europe/Berlin/Mitte/Nord"),
        ("language", "en_US"),
        ("language", "e" * 36),
        ("ga_client_id", "GA1.1.123.456"),
        ("ga_client_id", "123"),
        ("ga_session_id", "s1700000000"),
        ("ga_session_id", ["1"]),
    ],
)
async def test_malformed_signals_are_a_json_400(site, field, value) -> None:
    _cfg, writer, client, _now = site
    status, body = await visit(client, **{field: value})
    assert status == 400 and body["error"] == "invalid_field" and field in body["message"]


async def test_empty_or_missing_signals_store_nothing(site) -> None:
    _cfg, writer, client, _now = site
    status, body = await visit(client, time_zone="", language=None)
    assert status == 200
    assert set(stored(writer, body["visitor_id"]).values()) == {None}


async def test_a_call_is_scored_with_the_candidates_browser_zones(site, tmp_path) -> None:
    cfg, writer, client, now = site
    # two visitors share N1's history; the caller's number is from Chicago
    _, one = await visit(client, time_zone=LA)
    _, two = await visit(client, time_zone=CHICAGO)
    now[0] = at(0.2)
    for vid in (one["visitor_id"], two["visitor_id"]):
        await client.post("/api/renew", json={"visitor_id": vid}, headers={"Origin": SHOP})
    numbers = {one["numbers"]["+13125550100"]["number"], two["numbers"]["+13125550100"]["number"]}
    assert len(numbers) == 2

    def call(db, number: str):
        start = StartCall(iso(at(20)), number, "+13125557777", None, "google-ads", "gads", "main")
        call_id = call_store.insert_call(db, start, channel_id=f"c-{number}", linkedid=None)
        attribute_call(db, cfg, call_id, start, at(20))
        row = db.conn.execute(
            "SELECT attribution_reason, attribution_candidates_json FROM calls WHERE id = ?",
            (call_id,),
        ).fetchone()
        return row[0], json.loads(row[1])

    reason, candidates = writer.run_sync(call, two["numbers"]["+13125550100"]["number"])
    assert candidates[0]["zone_hours"] == 0
    assert "time zone of the caller's number" in reason
    reason, candidates = writer.run_sync(call, one["numbers"]["+13125550100"]["number"])
    assert candidates[0]["zone_hours"] == 2 and "2 h from the caller's time zone" in reason

    conf = tmp_path / "cli.yaml"
    conf.write_text(f"database: {{path: {tmp_path / 'ctm.db'}}}\n{CONFIG}", encoding="utf-8")
    out = CliRunner().invoke(main, ["--config", str(conf), "calls", "show", "2"])
    assert out.exit_code == 0, out.output
    assert "2 h from the caller's time zone" in out.output  # the reason, in words
    assert "browser 2 h from the caller's time zone" in out.output  # the candidate's line
