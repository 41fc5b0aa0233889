"""The outbox's store side: events written in the call log's own transaction, from the
one place ARI mode, AGI mode, the call spool and the dashboard's tags all write through."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ctm_pbx.adapters import agi_calls, ari_calls
from ctm_pbx.adapters.call_records import record
from ctm_pbx.adapters.store import call_search, outbox
from ctm_pbx.adapters.store.schema import migrate
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.core.call.agi_plan import AgiPlan, AgiStatus
from ctm_pbx.core.call.agi_tracker import AgiCallTracker
from ctm_pbx.core.call.ari_flow import CallFlow
from tests.helpers import config
from tests.outbox_helpers import finish, outbox_rows, start_call, whole_call

HOOKS = """
webhooks:
  crm:
    url: https://crm.example.com/hook
    secret: a-secret-of-sixteen-chars
    events: [call.started, call.completed, call.qualified, call.tagged]
  ops:
    url: https://ops.example.com/hook
    secret: another-secret-16-chars
ga4:
  measurement_id: G-TEST123
  api_secret: secret
"""


@pytest.fixture
def writer(tmp_path: Path):
    w = StoreWriter(str(tmp_path / "ctm.db"))
    w.run_sync(migrate)
    w.run_sync(outbox.attach, outbox.routing_for(config(HOOKS)))
    yield w
    w.close()


def test_a_call_writes_its_events_for_every_destination_that_wants_them(writer) -> None:
    call_id = writer.run_sync(whole_call, "c1", 60.0)
    rows = writer.run_sync(outbox_rows)
    assert [(r["destination"], r["event_type"]) for r in rows] == [
        ("crm", "call.started"),
        ("crm", "call.completed"),
        ("ops", "call.completed"),
        ("crm", "call.qualified"),
        ("ga4", "call.qualified"),
    ]
    assert {r["call_id"] for r in rows} == {call_id}
    assert {r["state"] for r in rows} == {"pending"}
    completed = [r["event_id"] for r in rows if r["event_type"] == "call.completed"]
    assert len(set(completed)) == 1, "one event, one id, whatever the destinations"


def test_a_short_call_is_completed_but_not_qualified(writer) -> None:
    writer.run_sync(whole_call, "c1", 5.0)
    types = {r["event_type"] for r in writer.run_sync(outbox_rows)}
    assert types == {"call.started", "call.completed"}


def test_an_event_whose_call_row_was_rolled_back_never_exists(writer) -> None:
    def fails(db) -> None:
        whole_call(db, "c1")
        raise RuntimeError("the job fails after writing")

    with pytest.raises(RuntimeError):
        writer.run_sync(fails)
    assert writer.run_sync(outbox_rows) == []
    assert writer.run_sync(lambda db: db.execute("SELECT count(*) FROM calls").fetchone()[0]) == 0


def test_a_connection_without_routing_writes_no_events(tmp_path: Path) -> None:
    w = StoreWriter(str(tmp_path / "plain.db"))
    try:
        w.run_sync(migrate)
        w.run_sync(whole_call, "c1")
        assert w.run_sync(outbox_rows) == []
    finally:
        w.close()


def test_ari_mode_writes_events_in_the_recorders_transaction(writer) -> None:
    cfg = config(HOOKS)
    call = ari_calls._Call(flow=CallFlow(cfg, {}), channel_id="ari-1")
    now = datetime.now(UTC)
    writer.run_sync(record, cfg, call, [start_call(now)], now)
    assert [r["event_type"] for r in writer.run_sync(outbox_rows)] == ["call.started"]
    writer.run_sync(record, cfg, call, [finish(talk=40.0)], now)
    rows = writer.run_sync(outbox_rows)
    assert [r["event_type"] for r in rows if r["destination"] == "crm"] == [
        "call.started",
        "call.completed",
        "call.qualified",
    ]
    assert {r["call_id"] for r in rows} == {call.call_id}


def test_agi_mode_writes_the_same_events(writer) -> None:
    cfg = config(HOOKS)
    now = datetime.now(UTC)
    call = agi_calls._AgiCall("agi-1", AgiCallTracker(AgiPlan(AgiStatus.OK), now))
    writer.run_sync(agi_calls._record_start, cfg, call, start_call(now), AgiPlan(AgiStatus.OK), now)
    writer.run_sync(agi_calls._record_actions, cfg, call, [finish(talk=40.0)], now)
    rows = writer.run_sync(outbox_rows)
    assert [r["event_type"] for r in rows if r["destination"] == "crm"] == [
        "call.started",
        "call.completed",
        "call.qualified",
    ]


def test_tagging_a_call_is_an_event_only_when_its_tags_change(writer) -> None:
    call_id = writer.run_sync(whole_call, "c1", 5.0)
    before = len(writer.run_sync(outbox_rows))
    assert writer.run_sync(call_search.annotate_call, call_id, ["lead"], "")
    assert writer.run_sync(call_search.annotate_call, call_id, ["lead"], "a comment only")
    rows = writer.run_sync(outbox_rows)[before:]
    assert [(r["destination"], r["event_type"]) for r in rows] == [("crm", "call.tagged")]


def test_retry_sends_dead_events_again_and_enables_the_destination(writer) -> None:
    writer.run_sync(whole_call, "c1", 5.0)

    def kill(db) -> None:
        db.execute("UPDATE outbox SET state = 'dead', attempts = 15 WHERE destination = 'crm'")
        outbox.disable(db, "crm", "2026-12-01T00:00:00.000Z", "HTTP 410 Gone")

    writer.run_sync(kill)
    assert "410" in writer.run_sync(outbox.summary)["crm"]["disabled"]
    assert writer.run_sync(outbox.retry, "crm", "2026-12-02T00:00:00.000Z") == 2
    row = writer.run_sync(outbox.summary)["crm"]
    assert (row["pending"], row["dead"], row.get("disabled")) == (2, 0, None)
