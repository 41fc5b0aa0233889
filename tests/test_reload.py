"""Config reload (SIGHUP) of a running daemon, and no secret in any log line.

The daemon runs as in tests/test_metrics.py (``both`` modes, nothing at the ARI
and AMI ports); ``reloader.reload()`` is what the SIGHUP handler runs (the signal
itself: tests/test_daemon.py). A call in progress across a reload in ARI mode, with
the real Asterisk: tests/integration/test_reload.py.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import unused_port

from ctm_pbx.edges.daemon import Daemon
from ctm_pbx.edges.logs import LogfmtFormatter
from tests.test_agi_adapter import agi_request, ami
from tests.test_metrics import (
    AMI_SECRET,
    ARI_PASSWORD,
    SHOP,
    TOKEN,
    make_daemon,  # noqa: F401 - the fixture
    scrape,
    visit,
)

NEWSLETTER = """\
  newsletter:
    kind: onsite
    match: [{landing_params: {utm_source: newsletter}}]
"""


def config_text(d: Daemon) -> str:
    assert d.config.path is not None
    return Path(d.config.path).read_text()


def rewrite(d: Daemon, text: str) -> None:
    assert d.config.path is not None
    Path(d.config.path).write_text(text)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.fixture
def logs(caplog) -> Iterator[pytest.LogCaptureFixture]:  # noqa: ANN001
    """caplog, on ctm-pbx's loggers from the start (the CLI's setup_logging replaces the
    root logger's handlers, caplog's among them) and on the root's after it."""
    ours, root = logging.getLogger("ctm_pbx"), logging.getLogger()
    ours.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        ours.removeHandler(caplog.handler)
        root.removeHandler(caplog.handler)


def capture(caplog) -> None:  # noqa: ANN001
    """Also what reaches the root logger (aiohttp's, asyncio's), not twice ours."""
    logging.getLogger().addHandler(caplog.handler)
    logging.getLogger("ctm_pbx").removeHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)


async def test_an_invalid_file_keeps_the_running_config(make_daemon, logs) -> None:  # noqa: ANN001, F811
    d = await make_daemon()
    capture(logs)
    running = d.config
    good = config_text(d)
    bad = good.replace("targets: [desk]", "targets: [desk-9]")
    bad = bad.replace('"+13125550150", pool: gads', '"+13125550150", pool: nope')
    rewrite(d, bad)
    assert await d.reloader.reload() is False
    assert d.config is running and d.handler.config is running and d.api.config is running
    assert d.agi.config is running and d.dashboard_state.config is running
    assert d.api.desk.config is running
    lines = [r.getMessage() for r in logs.records if r.name == "ctm_pbx.edges.reload"]
    assert any("2 problem(s); the running config stays" in line for line in lines), lines
    path = d.config.path
    route_at, number_at = line_of(bad, "desk-9"), line_of(bad, "pool: nope")
    for at, problem in (
        (route_at, "routes.main.targets[0]: unknown receiving number 'desk-9'"),
        (number_at, "tracking_numbers[0].pool: unknown pool 'nope'"),
    ):
        assert any(x.startswith(f"config reload: {path}:{at}: {problem}") for x in lines), lines
    # still serving with the old one: the pool hands out numbers
    first = await visit(d, f"{SHOP}/?gclid=still")
    assert first["numbers"]["+13125550100"]["number"] in ("+13125550150", "+13125550151")
    assert (await scrape(d))[("ctm_config_reloads_total", (("result", "invalid"),))] == 1


async def test_new_sources_pools_routes_and_numbers_apply_to_the_next_visit(
    make_daemon,  # noqa: ANN001, F811
    logs,  # noqa: ANN001
) -> None:
    d = await make_daemon()
    capture(logs)
    before = await visit(d, f"{SHOP}/?utm_source=newsletter")
    assert before["source"] is None, "no such source yet"
    text = config_text(d)
    text = text.replace("sources:\n", "sources:\n" + NEWSLETTER)
    text = text.replace("pools:\n", "pools:\n  letters: {source: newsletter}\n")
    text = text.replace(
        "routes:\n",
        "routes:\n  evening: {type: single, targets: [desk], ring_timeout: 7}\n",
    )
    text += '  - {number: "+13125550160", pool: letters, route: evening}\n'
    rewrite(d, text)
    old_index = d.api.desk.sources
    assert await d.reloader.reload() is True
    assert d.api.desk.sources is not old_index, "the source index is built for the new config"
    assert d.handler.config is d.config and d.agi.config is d.config
    assert d.inventory.numbers["+13125550160"].pool == "letters"
    after = await visit(d, f"{SHOP}/?utm_source=newsletter")
    assert after["source"] == "newsletter"
    assert after["numbers"]["+13125550100"]["number"] == "+13125550160"
    assert any(
        "config numbers: 1 added, 0 updated, 0 released" in r.getMessage() for r in logs.records
    )
    samples = await scrape(d)
    assert samples[("ctm_config_reloads_total", (("result", "applied"),))] == 1
    assert samples[("ctm_pool_numbers", (("pool", "letters"),))] == 1


async def test_a_sync_that_releases_too_much_is_refused(make_daemon, logs) -> None:  # noqa: ANN001, F811
    """database.max_release_percent (25): dropping all three numbers is a wrong file."""
    d = await make_daemon()
    capture(logs)
    running = d.config
    text = config_text(d)
    rewrite(d, text[: text.index("tracking_numbers:")])
    assert await d.reloader.reload() is False
    assert d.config is running and len(d.inventory.numbers) == 3
    assert any(
        "not syncing the config's numbers" in r.getMessage()
        and "running config stays" in r.getMessage()
        for r in logs.records
    )


async def test_listener_settings_wait_for_a_restart(make_daemon, logs) -> None:  # noqa: ANN001, F811
    d = await make_daemon()
    capture(logs)
    port = d.config.web.port
    text = config_text(d).replace(f"port: {port},", f"port: {unused_port()},")
    rewrite(
        d,
        text.replace(
            "main: {type: single, targets: [desk]}",
            "main: {type: single, targets: [desk], ring_timeout: 9}",
        ),
    )
    assert await d.reloader.reload() is True
    assert d.config.web.port == port, "kept as running"
    assert d.config.routes["main"].ring_timeout == 9, "the rest applies"
    assert any("web changed: read at start only" in r.getMessage() for r in logs.records)


async def test_an_agi_call_in_progress_keeps_its_route(make_daemon) -> None:  # noqa: ANN001, F811
    """The first call's plan was made at its request; the reload moves the number to
    another route: the first call completes on the old one, the next takes the new."""
    d = await make_daemon()
    port = d.config.asterisk.agi.port
    first = await agi_request(port, "u-1", "+13125550142")
    assert first.variables["CTM_DIAL_1"].startswith("PJSIP/phone1,")
    text = config_text(d)
    text = text.replace(
        "receiving_numbers:\n",
        'receiving_numbers:\n  desk-2: {number: "+13125550102", dial: "PJSIP/phone2"}\n',
    )
    text = text.replace("routes:\n", "routes:\n  other: {type: single, targets: [desk-2]}\n")
    text = text.replace(
        '"+13125550142", source: billboard, route: main',
        '"+13125550142", source: billboard, route: other',
    )
    rewrite(d, text)
    assert await d.reloader.reload() is True

    dest = {"DestUniqueid": "d-1", "DestChannel": "PJSIP/phone1-00000002"}
    for msg in (
        ami("DialBegin", "u-1", DialString="phone1", **dest),
        ami("DialEnd", "u-1", DialStatus="ANSWER", **dest),
        ami("Hangup", "u-1", Cause="16"),
    ):
        d.agi.on_ami_event(msg)
    second = await agi_request(port, "u-2", "+13125550142")
    assert second.variables["CTM_DIAL_1"].startswith("PJSIP/phone2,")
    from ctm_pbx.adapters.store import calls as call_store

    row = d.writer.run_sync(call_store.call_by_channel, "u-1")
    assert row["route"] == "main" and row["answered_by"] == "desk"
    assert d.writer.run_sync(call_store.call_by_channel, "u-2")["route"] == "other"


async def test_no_secret_in_any_log_line(make_daemon, logs) -> None:  # noqa: ANN001, F811
    """ARI refuses the password, AMI refuses the secret, a scrape has a wrong token,
    reloads pass and fail, a call finishes: none of the config's secrets reach the log."""
    ari = web.Application()

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=401, text="Authentication required")

    ari.router.add_route("*", "/{tail:.*}", refuse)
    runner = web.AppRunner(ari)
    await runner.setup()
    ari_port = unused_port()
    await web.TCPSite(runner, "127.0.0.1", ari_port).start()

    async def refuse_login(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        data = await reader.readuntil(b"\r\n\r\n")
        found = re.search(rb"ActionID: (\S+)", data, re.I)
        action_id = found.group(1) if found else b""
        writer.write(
            b"Response: Error\r\nActionID: "
            + action_id
            + b"\r\nMessage: Authentication failed\r\n\r\n"
        )
        await reader.read()  # until ctm-pbx closes

    ami_port = unused_port()
    ami_server = await asyncio.start_server(refuse_login, "127.0.0.1", ami_port)
    try:
        d = await make_daemon(
            f'  metrics: {{token: "{TOKEN}"}}', ari_port=ari_port, ami_port=ami_port
        )
        capture(logs)
        for _ in range(200):
            messages = [r.getMessage() for r in logs.records]
            if any("AMI login refused" in m for m in messages) and any(
                "ARI connection failed" in m for m in messages
            ):
                break
            await asyncio.sleep(0.05)
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{d.config.dashboard.port}/metrics"
            async with http.get(url, headers={"Authorization": "Bearer nope"}) as r:
                assert r.status == 401
        text = config_text(d)
        assert await d.reloader.reload() is True
        rewrite(
            d,
            text.replace("targets: [desk]", "targets: [desk-9]").replace(
                "password: " + ARI_PASSWORD, "password: [" + ARI_PASSWORD + "]"
            ),
        )
        assert await d.reloader.reload() is False
        await agi_request(d.config.asterisk.agi.port, "u-9", "+13125550142")
        d.agi.on_ami_event(ami("Hangup", "u-9", Cause="16"))
        for _ in range(200):  # AMI never saw it: its end waits for the call spool first
            if any(r.getMessage() == "call finished" for r in logs.records):
                break
            await asyncio.sleep(0.02)
    finally:
        ami_server.close()
        await runner.cleanup()
    messages = [r.getMessage() for r in logs.records]
    assert any("AMI login refused" in m for m in messages), messages
    assert any("ARI connection failed" in m for m in messages), messages
    assert any(m == "call finished" for m in messages)
    assert any("asterisk.password: expected a string" in m for m in messages), messages
    formatted = "\n".join(LogfmtFormatter().format(r) for r in logs.records)
    for secret in (ARI_PASSWORD, AMI_SECRET, TOKEN):
        assert secret not in formatted
