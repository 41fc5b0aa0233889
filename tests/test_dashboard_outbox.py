"""The dashboard's Integrations page: per destination what waits, failed, was given up."""

from __future__ import annotations

from pathlib import Path

from ctm_pbx.adapters.config_loader import parse_config
from ctm_pbx.adapters.store import migrate, open_db, outbox
from ctm_pbx.adapters.store import users as user_store
from ctm_pbx.adapters.store.reader import StoreReader
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.core.users import Role
from ctm_pbx.edges.dashboard import Dashboard, create_dashboard_app
from tests.helpers import BASE
from tests.outbox_helpers import whole_call
from tests.test_dashboard import NOW, PASSWORD, login

HOOKS = """
webhooks:
  crm: {url: "https://crm.example/h", secret: 0123456789abcdef, events: [call.completed]}
  ops: {url: "https://ops.example/h", secret: 0123456789abcdef, events: [call.completed]}
"""


async def test_the_page_shows_each_destinations_outbox(tmp_path: Path, aiohttp_client) -> None:
    cfg = parse_config(HOOKS + BASE, env={})
    db = open_db(tmp_path / "ctm.db")
    migrate(db)
    user_store.add_user(db, "victor", PASSWORD, Role.VIEWER, NOW)
    outbox.attach(db, outbox.routing_for(cfg))
    with db.conn:
        whole_call(db, "c1")
        whole_call(db, "c2")
        db.execute(
            "UPDATE outbox SET state = 'dead', attempts = 15, last_error = 'HTTP 500'"
            " WHERE destination = 'crm' AND id = (SELECT min(id) FROM outbox)"
        )
        outbox.disable(db, "ops", "2026-12-03T20:00:00.000Z", "HTTP 410 Gone")
    db.conn.close()
    writer, reader = StoreWriter(str(tmp_path / "ctm.db")), StoreReader(str(tmp_path / "ctm.db"))
    try:
        client = await aiohttp_client(
            create_dashboard_app(Dashboard(cfg, reader, writer, clock=lambda: NOW))
        )
        assert (await client.get("/outbox", allow_redirects=False)).status == 303
        await login(client, "victor")
        html = await (await client.get("/outbox")).text()
    finally:
        reader.close()
        writer.close()
    assert 'aria-current="page">Integrations' in html
    crm = html.split('<th scope="row">crm</th>')[1].split("</tr>")[0]
    assert [c.split(">")[1] for c in crm.split('<td class="num"')[1:]] == [
        "1</td", "0</td", "1</td", "0</td", "0</td"
    ]  # fmt: skip
    assert "disabled: HTTP 410 Gone" in html
    assert "call.completed of" in html and "dead after 15 attempts (HTTP 500)" in html
