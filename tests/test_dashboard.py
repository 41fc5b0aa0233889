"""The dashboard over HTTP (aiohttp's test client) on a real SQLite store: every route
locked, sessions, CSRF, login limits, pages with the seeded calls, tags, audio ranges."""

from __future__ import annotations

import re
import wave
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ctm_pbx.adapters import pool_accuracy
from ctm_pbx.adapters.config_loader import parse_config
from ctm_pbx.adapters.store import migrate, open_db
from ctm_pbx.adapters.store import users as user_store
from ctm_pbx.adapters.store.reader import StoreReader
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.core.users import Role
from ctm_pbx.edges.dashboard import COOKIE, DASHBOARD, Dashboard, create_dashboard_app
from tests.helpers import BASE
from tests.test_store_reports import CALLS

NOW = datetime(2026, 12, 3, 21, 30, tzinfo=UTC)
PASSWORD = "correct horse battery"


def _wav(path: Path, seconds: float) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x01" * int(8000 * seconds))


@pytest.fixture
def store(tmp_path: Path):
    db = open_db(tmp_path / "ctm.db")
    migrate(db)
    for started, fields in CALLS:
        row = {"status": "completed", "started_at": started, **fields}
        row.setdefault("tracking_number", "+13125550100")
        db["calls"].insert(row)
    db["calls"].update(1, {"recording_path": "/var/spool/asterisk/monitor/ctm-1700.1.wav"})
    db["calls"].insert(
        {"status": "in_progress", "started_at": "2026-12-03T21:29:00.000Z",
         "tracking_number": "+13125550150", "caller_number": "+13125550077"}
    )  # fmt: skip
    user_store.add_user(db, "alice", PASSWORD, Role.ADMIN, NOW)
    user_store.add_user(db, "victor", PASSWORD, Role.VIEWER, NOW)
    db.conn.close()
    rec = tmp_path / "rec"
    rec.mkdir()
    _wav(rec / "ctm-1700.1.wav", 2.0)
    return tmp_path


@pytest.fixture
async def client(store: Path, aiohttp_client):
    cfg = parse_config(
        "reports: {time_zone: America/Chicago}\n"
        f"asterisk: {{recordings: {{local_dir: {store / 'rec'}}}}}\n"
        "web: {trusted_proxies: [127.0.0.1]}\n" + BASE + "pools:\n  gads: {source: google-ads}\n",
        env={},
    )
    writer = StoreWriter(str(store / "ctm.db"))
    reader = StoreReader(str(store / "ctm.db"))
    dash = Dashboard(cfg, reader, writer, clock=lambda: NOW)
    yield await aiohttp_client(create_dashboard_app(dash))
    reader.close()
    writer.close()


async def login(client, user: str = "alice", password: str = PASSWORD, next_: str = "/"):
    page = await client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())[1]
    return await client.post(
        "/login",
        data={"username": user, "password": password, "csrf": csrf, "next": next_},
        allow_redirects=False,
    )


async def csrf_of(client, path: str = "/") -> str:
    return re.search(r'name="csrf" value="([^"]+)"', await (await client.get(path)).text())[1]


def _routes(app):
    """(method, example path) of every route of the app."""
    examples = {"call_id": "1", "kind": "recording"}
    for route in app.router.routes():
        info = route.resource.get_info()
        if "prefix" in info:  # static files
            yield route.method, info["prefix"] + "/dashboard.css", route.resource.name
            continue
        path = info.get("path") or info["formatter"].format(**examples)
        yield route.method, path, route.resource.name


async def test_every_route_refuses_anonymous_requests(client):
    routes = list(_routes(client.server.app))
    assert len(routes) >= 10
    for method, path, name in routes:
        if method == "HEAD":
            continue
        resp = await client.request(method, path, allow_redirects=False)
        if name in ("login", "static", "favicon"):
            assert resp.status in (200, 204, 403), (method, path)  # the login POST wants its token
            continue
        if method == "GET":
            assert resp.status == 303, (method, path)
            assert resp.headers["Location"].startswith("/login?next=")
        else:
            assert resp.status == 401, (method, path)


async def test_no_answer_names_the_software_behind_it(client):
    """Every kind of answer (a page, a redirect, a 404, static files) says ``Server:
    ctm-pbx``, as the visitor API does: no aiohttp or Python version for a scanner."""
    answers = [
        await client.get("/login"),
        await client.get("/", allow_redirects=False),
        await client.get("/no-such-page", allow_redirects=False),
        await client.get("/static/dashboard.css"),
    ]
    assert (await login(client)).headers["Server"] == "ctm-pbx"
    answers.append(await client.get("/calls"))
    for resp in answers:
        assert resp.headers["Server"] == "ctm-pbx", (resp.url, resp.status)


async def test_every_changing_route_refuses_a_missing_or_wrong_csrf_token(client):
    assert (await login(client)).status == 303
    changing = [(m, p) for m, p, _ in _routes(client.server.app) if m not in ("GET", "HEAD")]
    assert ("POST", "/logout") in changing and ("POST", "/calls/1/annotate") in changing
    for method, path in changing:
        if path == "/login":
            continue
        for token in (None, "forged"):
            data = {"csrf": token} if token else {}
            resp = await client.request(method, path, data=data, allow_redirects=False)
            assert resp.status == 403, (method, path, token)
    # still logged in: nothing was changed
    assert (await client.get("/calls", allow_redirects=False)).status == 200


async def test_login_sets_a_strict_http_only_session_cookie(client):
    resp = await login(client, next_="/calls?source=facebook")
    assert resp.status == 303 and resp.headers["Location"] == "/calls?source=facebook"
    cookie = resp.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and not cookie["secure"]
    assert cookie["path"] == "/"


async def test_behind_a_tls_proxy_the_cookie_is_secure(client):
    page = await client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())[1]
    resp = await client.post(
        "/login", data={"username": "alice", "password": PASSWORD, "csrf": csrf},
        headers={"X-Forwarded-Proto": "https"}, allow_redirects=False,
    )  # fmt: skip
    assert resp.cookies[COOKIE]["secure"]


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil"])
async def test_no_open_redirect_after_login(client, target):
    resp = await login(client, next_=target)
    assert resp.headers["Location"] == "/"


async def test_wrong_passwords_and_unknown_users_get_the_same_answer(client):
    wrong = await login(client, password="not the password")
    nobody = await login(client, user="mallory")
    assert wrong.status == nobody.status == 401
    assert "Wrong username or password." in await wrong.text()
    assert COOKIE not in wrong.cookies


async def test_logins_are_limited_per_account(client):
    statuses = [(await login(client, password=f"guess-{i}")).status for i in range(6)]
    assert statuses == [401] * 5 + [429]
    limited = await login(client)  # even the right password waits
    assert limited.status == 429 and int(limited.headers["Retry-After"]) > 0


async def test_logout_ends_the_session_on_the_server(client):
    await login(client)
    token = client.session.cookie_jar.filter_cookies(client.make_url("/"))[COOKIE].value
    resp = await client.post("/logout", data={"csrf": await csrf_of(client)}, allow_redirects=False)
    assert resp.status == 303
    # the old cookie, sent again, no longer opens anything
    resp = await client.get("/", cookies={COOKIE: token}, allow_redirects=False)
    assert resp.status == 303


async def test_overview_shows_the_calls_charts_and_live_calls(client):
    await login(client)
    resp = await client.get("/")
    html = await resp.text()
    assert resp.status == 200
    assert "Calls per day by source, last 30 days" in html and html.count("<svg") == 3
    assert "google-ads" in html and "winter" in html and "plumber" in html
    assert "(312) 555-0077" in html  # the call in progress
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert resp.headers["Cache-Control"] == "no-store"


async def test_call_log_filters_and_csv(client):
    await login(client)
    html = await (await client.get("/calls")).text()
    assert "6 calls" in html or "7 calls" in html
    html = await (await client.get("/calls?source=billboard")).text()
    assert "2 calls" in html
    html = await (await client.get("/calls?caller=5550001")).text()
    assert "2 calls" in html
    html = await (await client.get("/calls?since=2026-12-02&until=2026-12-02")).text()
    assert "2 calls" in html  # local days: 00:30 and 12:00 on the 2nd in Chicago
    csv = await (await client.get("/calls.csv?source=google-ads")).text()
    lines = csv.strip().splitlines()
    assert lines[0].startswith("id,started_at") and len(lines) == 4
    bad = await client.get("/calls?outcome=maybe")
    assert bad.status == 400


async def test_call_detail_and_tags_by_an_admin(client):
    await login(client)
    html = await (await client.get("/calls/1")).text()
    assert "Call 1: (312) 555-0001" in html and 'src="/calls/1/recording"' in html
    assert "/pricing?gclid=1" in html and "The caller's other calls" in html
    csrf = await csrf_of(client, "/calls/1")
    resp = await client.post("/calls/1/annotate", data={"csrf": csrf, "tags": "Hot lead, spam",
                                                        "comment": "asked for a quote"},
                             allow_redirects=False)  # fmt: skip
    assert resp.status == 303 and resp.headers["Location"] == "/calls/1?saved=1"
    html = await (await client.get("/calls?tag=hot-lead")).text()
    assert "1 call" in html and "hot-lead, spam" in html
    bad = await client.post("/calls/1/annotate", data={"csrf": csrf, "tags": "no way!"},
                            allow_redirects=False)  # fmt: skip
    assert "error=invalid+tag" in bad.headers["Location"]


async def test_viewers_read_but_do_not_edit(client):
    await login(client, user="victor")
    html = await (await client.get("/calls/1")).text()
    assert 'action="/calls/1/annotate"' not in html
    resp = await client.post("/calls/1/annotate", data={"csrf": await csrf_of(client, "/calls/1"),
                                                        "tags": "x"})  # fmt: skip
    assert resp.status == 403


async def test_recordings_are_served_with_ranges(client):
    await login(client)
    full = await client.get("/calls/1/recording")
    assert full.status == 200 and full.headers["Content-Type"] == "audio/wav"
    assert len(await full.read()) == 44 + 32000
    part = await client.get("/calls/1/recording", headers={"Range": "bytes=0-99"})
    assert part.status == 206 and len(await part.read()) == 100
    assert (await client.get("/calls/2/recording")).status == 404
    assert (await client.get("/calls/999")).status == 404


async def _next_event(resp) -> dict:
    import json

    while True:
        line = (await resp.content.readline()).decode()
        if line.startswith("data: "):
            return json.loads(line[6:])


async def test_the_live_feed_pushes_calls_as_they_start_and_end(client, store):
    import asyncio

    await login(client)
    dash = client.server.app[DASHBOARD]
    resp = await client.get("/calls/live")
    assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
    assert (await resp.content.readline()) == b": live\n"
    await asyncio.sleep(1.2)  # the feed's first look marks where "new" starts

    def start(db):
        return db["calls"].insert(
            {"status": "in_progress", "started_at": "2026-12-03T21:30:00.000Z",
             "tracking_number": "+13125550150", "caller_number": "+13125550088",
             "source": "google-ads"}
        ).last_pk  # fmt: skip

    call_id = await dash.writer.run(start)
    event = await asyncio.wait_for(_next_event(resp), 5)
    assert event["id"] == call_id and event["status"] == "in_progress"
    assert event["cells"][1] == "(312) 555-0088" and event["cells"][3] == "google-ads"

    def end(db):
        db["calls"].update(call_id, {"status": "completed", "outcome": "answered",
                                     "talk_seconds": 42})  # fmt: skip

    await dash.writer.run(end)
    event = await asyncio.wait_for(_next_event(resp), 5)
    assert event["id"] == call_id and event["status"] == "completed"
    assert event["cells"][5] == "answered" and event["cells"][6] == "0:42"
    resp.close()


async def test_sources_page_lists_each_source_with_its_numbers_and_calls(client, store):
    def add_number(db):
        db["tracking_numbers"].insert(
            {"number": "+13125550111", "source": "billboard", "route": "one",
             "managed_by": "cli", "added_at": "x", "updated_at": "x", "label": "I-90"}
        )  # fmt: skip

    await client.server.app[DASHBOARD].writer.run(add_number)
    await login(client)
    html = await (await client.get("/sources")).text()
    assert "Sources and numbers" in html and "(312) 555-0111" in html and "I-90" in html
    billboard = html[html.index('href="/calls?source=billboard"') :].split("</tr>")[0]
    # two billboard calls in the last 30 days, both to that number
    assert '<td class="num">2</td>' in billboard


async def test_a_busy_pools_advice_is_worked_out_after_the_page(client, monkeypatch):
    """The advised size replays a week of visits (minutes on a busy pool): the page does
    not wait for it; it is worked out once in the background and kept."""
    monkeypatch.setattr(pool_accuracy, "QUICK_REPLAY", -1)  # every pool a busy one
    await login(client)
    html = await (await client.get("/pools")).text()
    assert "the advised size of gads is being worked out" in html
    dash = client.server.app[DASHBOARD]
    task = dash._advising
    await task
    html = await (await client.get("/pools")).text()
    assert dash._advising is task, "kept: not worked out again for an hour"
    assert "no size to advise for gads" in html


async def test_pools_page_reports_each_pools_accuracy(client):
    await login(client)
    html = await (await client.get("/pools")).text()
    assert "Number pools" and 'href="/calls?pool=gads"' in html
    assert "no size to advise for gads" in html and html.count("<svg") == 1
    row = html[html.index('href="/calls?pool=gads"') :].split("</tr>")[0]
    cells = re.findall(r'<td class="num">([^<]*)</td>', row)
    # 0 numbers; no visitors; calls 2 (both in the last 30 days), confidence 95 % and 50 %
    assert cells[0] == "0" and cells[4] == "2" and cells[5] == "72 %" and cells[6] == "50 %"
