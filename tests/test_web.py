"""The aiohttp app: health, and errors as JSON."""

from __future__ import annotations

from ctm_pbx.edges.web import create_app


async def test_health_reports_the_daemon_state(aiohttp_client) -> None:
    state = {"ari_connected": True, "calls_in_progress": 2}
    client = await aiohttp_client(create_app(lambda: state))
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "ari_connected": True, "calls_in_progress": 2}
    state["ari_connected"] = False
    resp = await client.get("/healthz")
    assert resp.status == 503 and (await resp.json())["status"] == "degraded"


async def test_unknown_paths_and_methods_are_json_4xx(aiohttp_client) -> None:
    client = await aiohttp_client(create_app(lambda: {"ari_connected": True}))
    resp = await client.get("/nope")
    assert resp.status == 404
    body = await resp.json()
    assert body["error"] == "not_found" and body["message"]
    resp = await client.post("/healthz")
    assert resp.status == 405 and (await resp.json())["error"] == "method_not_allowed"
