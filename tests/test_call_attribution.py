"""Attributing a call row: the store's lease history, repeat callers, the stored explanation."""

from __future__ import annotations

import json
from datetime import timedelta

from ctm_pbx.adapters.call_attribution import attribute_call
from ctm_pbx.adapters.config_loader import parse_config
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store import migrate, open_db
from ctm_pbx.adapters.visits import VisitRequest, handle_visit
from ctm_pbx.core.call.actions import StartCall
from ctm_pbx.core.clock import iso
from ctm_pbx.edges.cli import sync_config_numbers
from tests.helpers import BROWSER_UA
from tests.test_web_api import CONFIG, SHOP, T0

CALLER = "+17735550123"


def test_a_repeat_caller_days_later_is_linked_past_the_numbers_new_holder() -> None:
    cfg = parse_config(
        CONFIG.replace('  - {number: "+13125550151", pool: gads, route: main}\n', ""), env={}
    )
    db = open_db(":memory:")
    migrate(db)
    sync_config_numbers(cfg, db)

    def visit(at, gclid):
        with db.conn:
            return handle_visit(
                db, cfg, VisitRequest(None, f"{SHOP}/?gclid={gclid}", user_agent=BROWSER_UA), at
            )

    def call(at):
        number = "+13125550150"
        start = StartCall(iso(at), number, CALLER, None, "google-ads", "gads", "main")
        with db.conn:
            call_id = call_store.insert_call(db, start, channel_id=iso(at), linkedid=None)
            attribute_call(db, cfg, call_id, start, at)
        return call_store.get_call(db, call_id)

    first = visit(T0, "FIRST")
    made = call(T0 + timedelta(minutes=1))
    assert made["visitor_id"] == first.visitor_id and made["attribution_confidence"] > 0.9
    later = T0 + timedelta(days=2)
    other = visit(later - timedelta(minutes=90), "OTHER")  # held the number, left 90 min ago
    again = call(later)
    assert again["previous_call_id"] == made["id"]
    assert again["visitor_id"] == first.visitor_id != other.visitor_id
    assert again["click_ids"] == {"gclid": "FIRST"}
    assert "repeat caller" in again["attribution_reason"]
    candidates = again["attribution_candidates"]
    assert candidates[0]["repeat"] and candidates[-1]["someone_else"]
    assert json.dumps(candidates)  # stored as JSON, read back as a list
