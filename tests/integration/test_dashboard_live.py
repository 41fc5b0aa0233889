"""The dashboard's live feed sees a real call: sipp calls a tracking number through the
real Asterisk, and a logged-in page's event stream gets the call as it starts and ends."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from datetime import UTC, datetime

import aiohttp
import pytest

from ctm_pbx.adapters.store import open_db
from ctm_pbx.adapters.store import users as user_store
from ctm_pbx.core.users import Role

from .ctm import DIDS

pytestmark = pytest.mark.integration
PASSWORD = "integration password"


def test_a_real_call_appears_live_on_the_dashboard(ctm, phone_factory, carrier) -> None:
    db = open_db(ctm.config.database.path)
    user_store.add_user(db, "watcher", PASSWORD, Role.VIEWER, datetime.now(UTC))
    db.conn.close()
    base = f"http://{ctm.config.dashboard.host}:{ctm.config.dashboard.port}"
    events: list[dict] = []
    listening, ended = threading.Event(), threading.Event()

    async def watch() -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(f"{base}/login") as page:
                csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())[1]
            form = {"username": "watcher", "password": PASSWORD, "csrf": csrf}
            async with http.post(f"{base}/login", data=form) as resp:
                assert resp.status == 200 and str(resp.url) == f"{base}/"
            async with http.get(f"{base}/calls/live") as feed:
                assert feed.status == 200
                await asyncio.sleep(1.5)  # the feed's first look marks where "new" starts
                listening.set()
                async for line in feed.content:
                    if line.startswith(b"data: "):
                        events.append(json.loads(line[6:]))
                        if events[-1]["status"] == "completed":
                            break
        ended.set()

    watcher = threading.Thread(target=lambda: asyncio.run(asyncio.wait_for(watch(), 30)))
    watcher.start()
    assert listening.wait(15), "the dashboard's live feed did not open"
    phone_factory("phone1", "answer", ring_ms=300)
    call = carrier.place_call(DIDS["single"], "call", from_number="+13125550177", hold_ms=1500)
    assert call.success, call.describe()
    assert ended.wait(15), f"no completed call on the feed: {events}"
    watcher.join(5)
    row = ctm.call(tracking_number="+13125550142")
    assert [e["id"] for e in events] == [row["id"]] * len(events)
    assert events[-1]["cells"][1] == "(312) 555-0177" and events[-1]["cells"][5] == "answered"
    if len(events) == 2:  # seen while ringing too (the call lasted past a poll)
        assert events[0]["status"] == "in_progress"
