"""The visit desk: returning visitors answered from memory, their activity written in batches."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import pytest

from ctm_pbx.adapters.config_loader import parse_config
from ctm_pbx.adapters.store import migrate
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.adapters.visits import VisitDesk, VisitRequest, handle_visit
from ctm_pbx.core.model import NumberInfo
from ctm_pbx.edges.cli import sync_config_numbers
from ctm_pbx.edges.web import VisitApi, create_app
from tests.helpers import BROWSER_UA

CONFIG = """\
sources:
  google-ads: {preset: google_ads}
  facebook: {preset: facebook}
  direct: {preset: direct}
targets:
  sales: "+1 312 555 0100"
  support: "+1 312 555 0110"
pools:
  gads: {source: google-ads, target: sales}
receiving_numbers:
  desk: {number: "+13125550101", dial: "PJSIP/phone1"}
routes:
  main: {type: single, targets: [desk]}
tracking_numbers:
  - {number: "+13125550150", pool: gads, route: main}
  - {number: "+13125550151", pool: gads, route: main}
  - {number: "+13125550160", source: google-ads, route: main}
"""
SHOP = "https://shop.example.com"
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def cfg(tmp_path):
    return parse_config(CONFIG, env={}, base_dir=tmp_path)


def new_writer(cfg, path) -> StoreWriter:
    writer = StoreWriter(str(path))
    writer.run_sync(migrate)
    writer.run_sync(lambda db: sync_config_numbers(cfg, db))
    return writer


@pytest.fixture
def writers(cfg, tmp_path):
    made = [new_writer(cfg, tmp_path / "desk.db"), new_writer(cfg, tmp_path / "store.db")]
    yield made
    for writer in made:
        writer.close()


def page(visitor: str | None, path: str = "/page", referrer: str | None = SHOP + "/"):
    return VisitRequest(visitor, SHOP + path, referrer, "127.0.0.1", "pytest")


def heartbeat(visitor: str) -> VisitRequest:
    return VisitRequest(visitor, None)


def table_state(writer: StoreWriter) -> dict:
    def read(db) -> dict:
        q = db.conn.execute
        return {
            "visits": q(
                "SELECT started_at, last_active_at, pages, source, source_rule FROM visits"
                " ORDER BY started_at"
            ).fetchall(),
            "visitors": q("SELECT first_seen_at, last_seen_at, source FROM visitors").fetchall(),
            "leases": q(
                "SELECT number, leased_at, last_active_at, expires_at, shared FROM leases"
                " ORDER BY id"
            ).fetchall(),
        }

    return writer.run_sync(read)


# (minutes, request): page views and heartbeats of one visitor who came from a Google ad
JOURNEY = [
    (0, "click"),
    (1, "page"),
    (2.5, "page"),
    (3, "heartbeat"),
    (4, "page"),
    (40, "page"),  # idle past the visit's end: a new visit (from the store)
    (41, "page"),
    (41.5, "heartbeat"),
    (50, "click"),  # another ad click: a new visit
    (51, "page"),
    (58, "page"),  # past the memory's refresh period: from the store again
]


async def test_the_desk_stores_exactly_what_the_store_alone_does(cfg, writers) -> None:
    """The same journey through the desk and straight through the store leaves the same rows."""
    desk_writer, store_writer = writers
    desk = VisitDesk(cfg, desk_writer, flush_after=60)
    answers: dict[str, list[dict]] = {"desk": [], "store": []}
    ids = {"desk": None, "store": None}
    for minute, kind in JOURNEY:
        for name in ("desk", "store"):
            vid = ids[name]
            req = (
                page(vid, f"/?gclid=click{minute}", None)
                if kind == "click"
                else page(vid)
                if kind == "page"
                else heartbeat(vid)
            )
            if name == "desk":
                result = await desk.visit(req, at(minute))
            else:
                result = await store_writer.run(handle_visit, cfg, req, at(minute))
            ids[name] = result.visitor_id
            answers[name].append(result.as_json() | {"visitor_id": None})
    desk.flush()
    assert answers["desk"] == answers["store"]
    desk_rows, store_rows = table_state(desk_writer), table_state(store_writer)
    assert desk_rows == store_rows
    assert [v[2] for v in desk_rows["visits"]] == [4, 2, 3], "heartbeats are not page views"
    assert desk_rows["leases"][0][3] > desk_rows["leases"][0][1]


async def test_a_returning_visitor_is_answered_while_the_store_is_busy(cfg, writers) -> None:
    writer = writers[0]
    desk = VisitDesk(cfg, writer, flush_after=60)
    first = await desk.visit(page(None, "/?gclid=busy", None), at(0))
    await desk.visit(heartbeat(first.visitor_id), at(0.2))  # the page's first: confirms it
    release = threading.Event()
    writer.defer(lambda db: release.wait(10), what="a long job", on_loop=False)
    try:
        again = await asyncio.wait_for(desk.visit(page(first.visitor_id), at(1)), 2)
        beat = await asyncio.wait_for(desk.visit(heartbeat(first.visitor_id), at(2)), 2)
    finally:
        release.set()
    assert again.numbers == first.numbers == beat.numbers
    assert again.expires_at == "2026-11-28T12:31:00.000Z"
    assert beat.expires_at == "2026-11-28T12:32:00.000Z"


async def test_buffered_activity_is_written_before_a_visit_that_goes_to_the_store(
    cfg, writers
) -> None:
    writer = writers[0]
    desk = VisitDesk(cfg, writer, flush_after=60)
    first = await desk.visit(page(None, "/?gclid=a", None), at(0))
    await desk.visit(heartbeat(first.visitor_id), at(0.2))  # the page's first: confirms it
    for minute in (1, 2, 3):
        await desk.visit(page(first.visitor_id), at(minute))
    assert [v[2] for v in table_state(writer)["visits"]] == [1], "still buffered"
    await desk.visit(page(first.visitor_id, "/?gclid=b", None), at(4))  # a new ad click
    visits = table_state(writer)["visits"]
    assert [(v[1], v[2]) for v in visits] == [
        ("2026-11-28T12:03:00.000Z", 4),
        ("2026-11-28T12:04:00.000Z", 1),
    ]


async def test_buffered_activity_is_written_after_the_delay_and_at_shutdown(
    aiohttp_client, cfg, writers
) -> None:
    writer = writers[0]
    clock = [at(0)]
    api = VisitApi(
        cfg, writer, clock=lambda: clock[0], desk=VisitDesk(cfg, writer, flush_after=0.05)
    )
    client = await aiohttp_client(
        create_app(lambda: {"ari_connected": True}, api), headers={"User-Agent": BROWSER_UA}
    )
    resp = await client.post("/api/visit", json={"landing_url": SHOP + "/?gclid=x"})
    vid = (await resp.json())["visitor_id"]
    clock[0] = at(1)
    await client.post("/api/visit", json={"visitor_id": vid, "landing_url": SHOP + "/a"})
    for _ in range(100):  # the flush is a timer on the loop: let it fire
        if table_state(writer)["visits"][0][2] == 2:
            break
        await asyncio.sleep(0.01)
    assert table_state(writer)["visits"][0][2] == 2
    api.desk.flush_after = 60
    clock[0] = at(2)
    await client.post("/api/visit", json={"visitor_id": vid, "landing_url": SHOP + "/b"})
    await client.close()  # the app's cleanup writes what is buffered
    assert table_state(writer)["visits"][0][1:3] == ("2026-11-28T12:02:00.000Z", 3)


def release(writer: StoreWriter, number: str) -> None:
    writer.run_sync(
        lambda db: db.conn.execute(
            "UPDATE tracking_numbers SET status = 'released' WHERE number = ?", (number,)
        )
    )


def lease_expiries(writer: StoreWriter, number: str) -> list[str]:
    return writer.run_sync(
        lambda db: [
            r[0]
            for r in db.conn.execute("SELECT expires_at FROM leases WHERE number = ?", (number,))
        ]
    )


def test_the_store_does_not_renew_a_released_number(cfg, writers) -> None:
    writer = writers[0]
    first = writer.run_sync(handle_visit, cfg, page(None, "/?gclid=rel", None), at(0))
    number = first.numbers["+13125550100"]["number"]
    release(writer, number)
    before = lease_expiries(writer, number)
    again = writer.run_sync(handle_visit, cfg, page(first.visitor_id), at(1))
    assert again.numbers["+13125550100"]["number"] not in (number, "+13125550100")
    assert lease_expiries(writer, number) == before, "the released number's lease ran out"


async def test_a_remembered_visitor_whose_number_was_released_asks_the_store(cfg, writers) -> None:
    writer = writers[0]
    live = writer.run_sync(
        lambda db: {
            r[0]: NumberInfo(*r)
            for r in db.conn.execute(
                "SELECT number, source, pool, route FROM tracking_numbers WHERE status = 'active'"
            )
        }
    )
    desk = VisitDesk(cfg, writer, flush_after=60, active_numbers=lambda: live)
    first = await desk.visit(page(None, "/?gclid=mem", None), at(0))
    number = first.numbers["+13125550100"]["number"]
    same = await desk.visit(page(first.visitor_id), at(1))
    assert same.numbers == first.numbers and first.visitor_id in desk._known
    release(writer, number)
    del live[number]  # what the daemon's inventory refresh sees
    moved = await desk.visit(page(first.visitor_id), at(2))
    assert moved.numbers["+13125550100"]["number"] not in (number, "+13125550100")
    desk.flush()
