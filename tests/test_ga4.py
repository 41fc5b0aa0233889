"""GA4 Measurement Protocol events for qualified calls, through the outbox, to a local
receiver that checks each request against the documented MP rules."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web

from ctm_pbx.adapters.store import visitors as visitor_store
from ctm_pbx.core.integrations import ga_client_id, ga_session_id
from tests.helpers import config
from tests.outbox_helpers import whole_call
from tests.test_webhooks import FAST, make_rig, until  # noqa: F401 - the rig fixture

EVENT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
RESERVED_PREFIXES = ("_", "firebase_", "ga_", "google_", "gtag.")


def mp_problems(query, payload: dict, now: float) -> list[str]:
    """What the Measurement Protocol documentation would refuse in a request."""
    out = []
    if query.get("measurement_id") != "G-TEST123" or query.get("api_secret") != "mp-secret":
        out.append("measurement_id and api_secret go in the query string")
    if not isinstance(payload.get("client_id"), str) or not payload["client_id"]:
        out.append("client_id: a non-empty string")
    ts = payload.get("timestamp_micros")
    if not isinstance(ts, int) or not (now - 72 * 3600) * 1e6 <= ts <= (now + 60) * 1e6:
        out.append("timestamp_micros: an integer within the last 72 hours")
    events = payload.get("events")
    if not isinstance(events, list) or not 1 <= len(events) <= 25:
        return [*out, "events: a list of 1 to 25"]
    for ev in events:
        name = ev.get("name", "")
        if not EVENT_NAME.match(name) or name.startswith(RESERVED_PREFIXES):
            out.append(f"event name {name!r}")
        params = ev.get("params", {})
        if not isinstance(params, dict) or len(params) > 25:
            out.append("params: a mapping of at most 25")
            continue
        for key, value in params.items():
            if not EVENT_NAME.match(key) or key.startswith(RESERVED_PREFIXES):
                out.append(f"param name {key!r}")
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                out.append(f"param {key}: a string or a number, not {type(value).__name__}")
            elif isinstance(value, str) and len(value) > 100:
                out.append(f"param {key}: at most 100 characters")
    return out


class Collector:
    def __init__(self) -> None:
        self.got: list[dict] = []
        self.problems: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        payload = json.loads(await request.read())
        self.problems += mp_problems(request.query, payload, time.time())
        self.got.append(payload)
        return web.Response(status=204)  # what /mp/collect answers, valid or not


GA4 = """
reports: {qualified_min_talk_seconds: 30}
ga4:
  measurement_id: G-TEST123
  api_secret: mp-secret
  endpoint: http://127.0.0.1:{port}/mp/collect
  event_name: generate_lead
  value: 25
  currency: EUR
"""


def call_with_visit(db, channel: str, talk: float, ga: str | None, session: str | None) -> int:
    call_id = whole_call(db, channel, talk)
    now = datetime.now(UTC)
    db.execute(
        "INSERT INTO visitors (id, first_seen_at, last_seen_at) VALUES (?, ?, ?)",
        [f"v-{channel}", "2026-12-01T00:00:00.000Z", "2026-12-01T00:00:00.000Z"],
    )
    visitor_store.insert_visit(
        db, f"visit-{channel}", f"v-{channel}", now=now - timedelta(minutes=5),
        utm={"campaign": "spring"}, click_ids={"gclid": "Cj0"},
    )  # fmt: skip
    db.execute(
        "UPDATE visits SET ga_client_id = ?, ga_session_id = ? WHERE id = ?",
        [ga, session, f"visit-{channel}"],
    )
    db.execute(
        "UPDATE calls SET visit_id = ?, visitor_id = ?, utm_campaign = 'spring',"
        " source = 'google-ads' WHERE id = ?",
        [f"visit-{channel}", f"v-{channel}", call_id],
    )
    return call_id


async def test_a_qualified_call_is_one_valid_mp_event(aiohttp_server, make_rig) -> None:  # noqa: F811
    rx = Collector()
    app = web.Application()
    app.router.add_post("/mp/collect", rx.handle)
    server = await aiohttp_server(app)
    cfg = dataclasses.replace(config(GA4.replace("{port}", str(server.port))), outbox=FAST)
    rig = await make_rig(cfg)
    # GA4 events are made when first sent: the visit is in place by then
    cookie, session = "GA1.1.1234567890.1700000000", "GS1.1.1733000000.4.1.1733000100.0.0.0"
    first = await rig.writer.run(call_with_visit, "c1", 95.0, cookie, session)
    await rig.writer.run(call_with_visit, "c2", 5.0, cookie, session)  # not qualified
    await rig.writer.run(call_with_visit, "c3", 60.0, None, None)  # no GA on the page
    await until(lambda: {r["state"] for r in rig.rows("ga4")} == {"delivered", "skipped"})
    assert rx.problems == []
    (event,) = rx.got
    assert event["client_id"] == "1234567890.1700000000"
    (ev,) = event["events"]
    assert ev["name"] == "generate_lead"
    p = ev["params"]
    assert (p["call_id"], p["source"], p["campaign"]) == (str(first), "google-ads", "spring")
    assert (p["talk_seconds"], p["value"], p["currency"]) == (95.0, 25.0, "EUR")
    assert p["session_id"] == "1733000000" and p["engagement_time_msec"] == 1
    skipped = [r for r in rig.rows("ga4") if r["state"] == "skipped"]
    assert [r["last_error"] for r in skipped] == ["the visit has no GA client id"]


def test_ga_ids_are_read_from_the_cookies_or_taken_as_they_are() -> None:
    assert ga_client_id("GA1.1.111.222") == "111.222"
    assert ga_client_id("GA1.2.111.222") == "111.222"
    assert ga_client_id("111.222") == "111.222"
    assert ga_client_id("garbage") is None and ga_client_id(None) is None
    assert ga_session_id("GS1.1.1733000000.4.1.1733000100.0.0.0") == "1733000000"
    assert ga_session_id("GS2.1.s1733000000$o4$g1$t1733000100$j0$l0$h0") == "1733000000"
    assert ga_session_id("1733000000") == "1733000000"
    assert ga_session_id("nonsense") is None


def test_a_call_older_than_72_hours_is_not_sent() -> None:
    from ctm_pbx.core.integrations import ga4_event

    call = {"id": 1, "started_at": "2026-11-01T00:00:00+00:00", "ended_at": None}
    now = datetime(2026, 11, 5, tzinfo=UTC)
    event, why = ga4_event(
        call, {"ga_client_id": "1.2"}, name="phone_call", value=None, currency="USD", now=now
    )
    assert event is None and "72 hours" in why


def test_the_example_sends_nothing_to_google(tmp_path: Path) -> None:
    from ctm_pbx.adapters.config_loader import load_config

    example = load_config(Path(__file__).resolve().parent.parent / "config.example.yaml")
    assert example.ga4 is not None and "google" not in example.ga4.endpoint
