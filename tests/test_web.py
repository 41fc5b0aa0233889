"""The aiohttp app: health, and errors as JSON."""

from __future__ import annotations

import pytest

from ctm_pbx import __version__
from ctm_pbx.edges.web import create_app


def components(**ok: bool) -> dict:
    return {name: {"ok": value} for name, value in ok.items()}


async def test_health_reports_the_daemon_state(aiohttp_client) -> None:
    state = {"calls_in_progress": 2, "components": components(database=True, ari=True)}
    client = await aiohttp_client(create_app(lambda: state))
    resp = await client.get("/healthz")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok" and body["version"] == __version__
    assert body["ready"] == {"web_api": True, "calls": True} and body["calls_in_progress"] == 2


@pytest.mark.parametrize(
    ("parts", "web_api", "calls", "status"),
    [
        (components(database=True, ari=True), 200, 200, "ok"),
        # Asterisk restarting: the website API stays in the load balancer
        (components(database=True, ari=False), 200, 503, "degraded"),
        # AGI mode reads AMI and FastAGI, not ARI
        (components(database=True, ami=True, fastagi=True), 200, 200, "ok"),
        (components(database=True, ami=False, fastagi=True), 200, 503, "degraded"),
        (components(database=True, ami=True, fastagi=False), 200, 503, "degraded"),
        (components(database=True, ari=True, ami=True, fastagi=True), 200, 200, "ok"),
        # the store is gone: the API cannot answer, the calls are still routed
        (components(database=False, ari=True), 503, 200, "degraded"),
        (components(database=True, web=True, ari=True), 200, 200, "ok"),
        # the disk is full: the writer runs but cannot write; the API still answers
        (
            {"database": {"ok": False, "running": True, "writable": False}, "ari": {"ok": True}},
            200,
            200,
            "degraded",
        ),
        ({"database": {"ok": False, "running": False}, "ari": {"ok": True}}, 503, 200, "degraded"),
    ],
)
async def test_readiness_per_component(aiohttp_client, parts, web_api, calls, status) -> None:
    client = await aiohttp_client(create_app(lambda: {"components": parts}))
    resp = await client.get("/healthz")
    assert resp.status == web_api and (await resp.json())["status"] == status
    resp = await client.get("/healthz/calls")
    assert resp.status == calls and (await resp.json())["components"] == parts
    resp = await client.get("/healthz/live")
    assert resp.status == 200 and (await resp.json())["status"] == "alive"


async def test_unknown_paths_and_methods_are_json_4xx(aiohttp_client) -> None:
    client = await aiohttp_client(create_app(dict))
    resp = await client.get("/nope")
    assert resp.status == 404
    body = await resp.json()
    assert body["error"] == "not_found" and body["message"]
    resp = await client.post("/healthz")
    assert resp.status == 405 and (await resp.json())["error"] == "method_not_allowed"
    assert set(resp.headers["Allow"].split(",")) == {"GET", "HEAD"}
