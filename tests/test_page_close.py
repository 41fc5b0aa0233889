"""The page's close beacon (issue 17 §4): stored, reopened by a renewal, used by the
scorer and the hand-out order, and the API that takes it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ctm_pbx.adapters.config_loader import parse_config
from ctm_pbx.adapters.store import lease_index, migrate, open_db
from ctm_pbx.adapters.store import leases as store
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.adapters.visits import VisitRequest, handle_visit
from ctm_pbx.core.attribution import attribute
from ctm_pbx.core.clock import iso
from ctm_pbx.core.model import Pool
from ctm_pbx.core.pools import Lease, rests_until
from ctm_pbx.edges.cli import sync_config_numbers
from ctm_pbx.edges.web import VisitApi, create_app
from tests.helpers import BROWSER_UA

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SHOP = "https://shop.example.com"
TARGET = "+13125550100"
N1, N2 = "+13125550150", "+13125550151"
CONFIG = f"""\
web: {{allowed_origins: ["{SHOP}"]}}
sources:
  google-ads: {{preset: google_ads}}
targets:
  sales: "+1 312 555 0100"
pools:
  gads: {{source: google-ads}}
receiving_numbers:
  desk: {{number: "+13125550101", dial: "PJSIP/phone1"}}
routes:
  main: {{type: single, targets: [desk]}}
tracking_numbers:
  - {{number: "{N1}", pool: gads, route: main}}
  - {{number: "{N2}", pool: gads, route: main}}
"""
POOL = Pool("web", "google-ads", lease_minutes=30, cooldown_minutes=30)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def lease(last: float, closed: float | None = None, leased: float = 0, vid: str = "v1") -> Lease:
    return Lease(
        vid,
        at(leased),
        at(last),
        at(last + 30),
        f"{vid}-visit",
        number=N1,
        pool="web",
        closed_at=None if closed is None else at(closed),
    )


# --- core ------------------------------------------------------------------


def test_a_lease_is_closed_until_a_renewal_comes_after_the_close() -> None:
    assert not lease(5).closed
    assert lease(5, closed=6).closed and lease(5, closed=6).left_at() == at(6)
    assert lease(5, closed=5).closed, "a close in the same instant as the last renewal"
    reopened = lease(8, closed=6)
    assert not reopened.closed and reopened.left_at() == at(8)


def test_a_closed_page_rests_its_number_from_the_close() -> None:
    assert rests_until(lease(5), POOL) == at(5 + 30 + 30), "lease tail, then the cooldown"
    assert rests_until(lease(5, closed=6), POOL) == at(6 + 30), "the cooldown from the close"
    assert rests_until(lease(8, closed=6), POOL) == at(8 + 60), "reopened: as before"
    unconfirmed = lease(0, closed=0.1)
    assert rests_until(unconfirmed, POOL) == at(30), "never renewed: no rest, as without a close"


def test_the_scorer_reads_a_closed_page_as_left_at_once() -> None:
    # v1 renewed a minute ago and is idle under OPEN_MINUTES: without the beacon, still
    # on the page; with it, gone since the close 40 s ago
    now = at(10)
    renewed = lease(9, vid="v1")
    other = lease(9.5, closed=9.6, vid="v2")
    open_att = attribute(N1, now, [renewed, lease(2, vid="v2")], 1440)
    assert open_att.visitor_id == "v1" and open_att.candidates[0].open_page
    # v2 closed 24 s before the call: possibly the tap on the number (DIAL_MINUTES)
    both = attribute(N1, now, [renewed, other], 1440)
    assert {c.visitor_id for c in both.candidates if c.open_page} == {"v1", "v2"}
    # three minutes after the close, v2 is one who left 3 min ago; v1 is still open
    later = attribute(N1, at(12.6), [lease(12.5, vid="v1"), other], 1440)
    by_id = {c.visitor_id: c for c in later.candidates}
    assert by_id["v1"].open_page and not by_id["v2"].open_page
    assert by_id["v2"].idle_minutes == pytest.approx(3.0), "measured from the close"
    assert later.visitor_id == "v1"
    # the same idle without the beacon: v2's page counts as open (renewed 1.1 min ago)
    unknown = attribute(N1, at(10.6), [lease(10.5, vid="v1"), lease(9.5, vid="v2")], 1440)
    assert all(c.open_page for c in unknown.candidates)
    closed = attribute(
        N1, at(10.6), [lease(10.5, vid="v1"), lease(9.5, closed=9.5, vid="v2")], 1440
    )
    assert [c.open_page for c in closed.candidates] == [True, False]
    assert closed.confidence > unknown.confidence
    assert "left 1 min before" not in closed.reason


def test_a_reopened_page_is_open_again() -> None:
    att = attribute(N1, at(10.2), [lease(10, closed=7, vid="v1"), lease(9.9, vid="v2")], 1440)
    assert all(c.open_page for c in att.candidates)


# --- store -----------------------------------------------------------------


@pytest.fixture
def site(tmp_path):
    cfg = parse_config(CONFIG, env={}, base_dir=tmp_path)
    db = open_db(tmp_path / "ctm.db")
    migrate(db)
    sync_config_numbers(cfg, db)
    lease_index.attach(db)
    yield cfg, db, tmp_path / "ctm.db"
    db.conn.close()


def page(cfg, db, minute: float, vid: str | None = None, *, landing: bool = True):
    url = f"{SHOP}/?gclid=g" if landing else None
    with db.conn:
        got = handle_visit(
            db, cfg, VisitRequest(vid, url, ip="192.0.2.1", user_agent=BROWSER_UA), at(minute)
        )
    return got.visitor_id, got.numbers[TARGET]["number"]


def free_at(db, number: str) -> str:
    return db.conn.execute(
        "SELECT free_at FROM tracking_numbers WHERE number = ?", (number,)
    ).fetchone()[0]


def test_close_stores_the_time_and_a_renewal_reopens(site) -> None:
    cfg, db, _path = site
    vid, number = page(cfg, db, 0)
    page(cfg, db, 0.2, vid, landing=False)  # the first heartbeat confirms it
    assert free_at(db, number) == iso(at(0.2 + 60))
    with db.conn:
        assert store.close_leases(db, vid, at(3), cfg.pools) == 1
    (held,) = store.lease_history(db, number, at(0), at(3))
    assert held.closed_at == at(3) and held.closed
    assert free_at(db, number) == iso(at(3 + 30)), "rests from the close"
    # a second beacon (pagehide after visibilitychange) keeps the first close
    with db.conn:
        assert store.close_leases(db, vid, at(3.5), cfg.pools) == 0
    # the tab is shown again: the renewal reopens the lease and its number rests as before
    assert page(cfg, db, 5, vid, landing=False) == (vid, number)
    (held,) = store.lease_history(db, number, at(0), at(5))
    assert not held.closed and held.last_active_at == at(5)
    assert free_at(db, number) == iso(at(5 + 60))
    # the table says the same as the writer's index
    with db.conn:
        pass
    fresh = open_db(site[2])
    try:
        (row,) = store.lease_history(fresh, number, at(0), at(5))
        assert row == held
    finally:
        fresh.conn.close()


def test_a_closed_holder_is_not_counted_as_holding_its_number(site) -> None:
    cfg, db, _path = site
    a, na = page(cfg, db, 0)
    page(cfg, db, 0.2, a, landing=False)
    b, nb = page(cfg, db, 0.5)
    page(cfg, db, 0.7, b, landing=False)
    assert na != nb
    with db.conn:
        store.close_leases(db, a, at(2), cfg.pools)
    # both numbers are in use: the next visitor takes the closed one's, resting, not shared
    c, nc = page(cfg, db, 3)
    assert nc == na
    shown = db.conn.execute("SELECT shared FROM leases WHERE visitor_id = ?", (c,)).fetchone()[0]
    assert shown == 0, "its holder left: the number was resting, not held"


def test_a_close_right_after_activity_is_the_previous_page_s(site) -> None:
    cfg, db, _path = site
    vid, number = page(cfg, db, 0)
    page(cfg, db, 0.2, vid, landing=False)
    page(cfg, db, 1, vid)  # the next page's visit came first
    with db.conn:
        assert store.close_leases(db, vid, at(1) + timedelta(seconds=1), cfg.pools) == 0
    (held,) = store.lease_history(db, number, at(0), at(2))
    assert held.closed_at is None


def test_the_rest_of_an_earlier_holder_is_kept(site) -> None:
    cfg, db, _path = site
    a, na = page(cfg, db, 0)
    page(cfg, db, 0.2, a, landing=False)
    b, nb = page(cfg, db, 0.3)
    page(cfg, db, 0.5, b, landing=False)
    c, nc = page(cfg, db, 1)  # the pool is exhausted: shared with a
    assert nc == na
    with db.conn:
        assert store.close_leases(db, c, at(1.5), cfg.pools) == 1  # unconfirmed
    assert free_at(db, na) == iso(at(0.2 + 60)), "a's lease and cooldown still hold it"


# --- the API ---------------------------------------------------------------


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    cfg = parse_config(CONFIG, env={}, base_dir=tmp_path)
    writer = StoreWriter(str(tmp_path / "api.db"))
    writer.run_sync(migrate)
    writer.run_sync(lambda db: sync_config_numbers(cfg, db))
    now = [T0]
    api = VisitApi(cfg, writer, clock=lambda: now[0])
    app = create_app(dict, api)
    test_client = await aiohttp_client(app, headers={"User-Agent": BROWSER_UA})
    test_client.now = now
    test_client.writer = writer
    yield test_client
    writer.close()


async def post(client, path: str, body, origin: str | None = SHOP):
    headers = {"Origin": origin} if origin else {}
    data = body if isinstance(body, str | bytes) else None
    kwargs = {"data": data} if data is not None else {"json": body}
    resp = await client.post(path, headers=headers, **kwargs)
    return resp, await resp.json()


async def test_the_close_endpoint_closes_the_visitor_s_leases(client) -> None:
    resp, first = await post(
        client, "/api/visit", {"visitor_id": None, "landing_url": f"{SHOP}/?gclid=x"}
    )
    vid = first["visitor_id"]
    client.now[0] = at(0.2)
    resp, _ = await post(client, "/api/renew", {"visitor_id": vid})
    assert resp.status == 200
    client.now[0] = at(2)
    # a beacon is text/plain (a CORS simple request): the body is read whatever the type
    resp, body = await post(client, "/api/close", f'{{"visitor_id": "{vid}"}}')
    assert resp.status == 200 and body == {"closed": 1}
    assert resp.headers["Access-Control-Allow-Origin"] == SHOP

    def closed(db):
        return db.conn.execute(
            "SELECT closed_at FROM leases WHERE visitor_id = ?", (vid,)
        ).fetchone()[0]

    assert client.writer.run_sync(closed) == iso(at(2))
    resp, body = await post(client, "/api/close", {"visitor_id": "unknown-visitor"})
    assert resp.status == 200 and body == {"closed": 0}


@pytest.mark.parametrize(
    ("body", "origin", "status", "error"),
    [
        ("{}", SHOP, 400, "missing_field"),
        ('{"visitor_id": 7}', SHOP, 400, "invalid_field"),
        ('{"visitor_id": "no spaces allowed"}', SHOP, 400, "invalid_field"),
        ("[1]", SHOP, 400, "invalid_json"),
        ("{not json", SHOP, 400, "invalid_json"),
        (f'{{"visitor_id": "{"x" * 2000}"}}', SHOP, 413, "body_too_large"),
        ('{"visitor_id": "abcdefgh12"}', "https://evil.example", 403, "origin_not_allowed"),
    ],
)
async def test_bad_closes_are_a_json_4xx(client, body, origin, status, error) -> None:
    resp, answer = await post(client, "/api/close", body, origin)
    assert resp.status == status and answer["error"] == error and answer["message"]


async def test_the_close_endpoint_answers_a_preflight(client) -> None:
    resp = await client.options(
        "/api/close", headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"}
    )
    assert resp.status == 204 and resp.headers["Access-Control-Allow-Origin"] == SHOP


def test_the_pool_view_counts_a_closed_holder_s_number_as_resting() -> None:
    from ctm_pbx.core.pools import RESTING, NumberState, PoolView, assign, number_status

    closed = replace(lease(5, closed=6), number=N1)
    state = NumberState(N1, at(5), (closed,))
    assert state.active_holders(at(7)) == (closed,) and state.holding(at(7)) == ()
    assert number_status(state, POOL, at(7)) == RESTING
    view = PoolView(POOL, (state,))
    got = assign(view, "v2", at(7))  # exhausted: the cooldown is cut short, nothing shared
    assert got.number == N1 and not got.shared and "resting" in got.reason
    again = assign(view, "v1", at(7))  # the closed page's own visitor comes back: renewed
    assert again.renewed and again.lease_id == closed.id
