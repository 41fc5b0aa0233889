"""The SQLite store: migrations, inventory, call log, route memory."""

from __future__ import annotations

import sqlite3

import pytest

from ctm_pbx.adapters.store import StoreError, migrate, open_db
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store import numbers as number_store
from ctm_pbx.adapters.store.route_state import load_route_memory, save_route_memory
from ctm_pbx.adapters.store.schema import migrations, pending
from ctm_pbx.core.call.actions import StartCall
from ctm_pbx.core.call.ari_flow import CallFlow
from ctm_pbx.core.call.events import (
    DialResult,
    Ended,
    Inbound,
)
from ctm_pbx.core.inventory import NumberRecord, plan_config_sync
from ctm_pbx.core.model import NumberInfo, TrackingNumberDecl
from ctm_pbx.core.routing import RouteMemory
from tests.helpers import config
from tests.test_callflow import at

NOW = "2026-11-28T12:00:00.000Z"


@pytest.fixture
def db(tmp_path):
    database = open_db(tmp_path / "ctm.db")
    migrate(database)
    yield database
    database.conn.close()


def rec(number: str, managed_by: str = "cli", route: str = "one") -> NumberRecord:
    return NumberRecord(number, "billboard", None, route, "", managed_by=managed_by)


def test_database_is_wal_and_fully_migrated(db) -> None:
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert pending(db) == []
    assert {"tracking_numbers", "calls", "call_legs", "visits", "leases", "route_state"} <= set(
        db.table_names()
    )
    assert migrate(db) == [], "migrating twice is a no-op"


def test_migrations_upgrade_an_older_database(tmp_path) -> None:
    database = open_db(tmp_path / "old.db")
    first = [m.name for m in migrations._migrations][:2]
    migrations.apply(database, stop_before=[m.name for m in migrations._migrations][2])
    assert [m.name for m in migrations.applied(database)] == first
    assert migrate(database) == [m.name for m in migrations._migrations][2:]


def test_leases_are_indexed_for_who_held_a_number_at_a_time(db) -> None:
    plan = " ".join(
        str(r)
        for r in db.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM leases WHERE number = ? AND leased_at <= ?"
            " ORDER BY leased_at DESC LIMIT 5",
            ["+13125550150", NOW],
        ).fetchall()
    )
    assert "idx_leases_number_time" in plan


def test_add_is_all_or_nothing(db) -> None:
    number_store.add_numbers(db, [rec("+13125550142")], now=NOW)
    with pytest.raises(StoreError, match="already in the inventory"):
        number_store.add_numbers(db, [rec("+13125550143"), rec("+13125550142")], now=NOW)
    assert [r.number for r in number_store.list_numbers(db)] == ["+13125550142"]


def test_release_then_add_again(db) -> None:
    number_store.add_numbers(db, [rec("+13125550142")], now=NOW)
    released = number_store.release_number(db, "+13125550142", now=NOW)
    assert released.status == "released" and released.released_at == NOW
    assert number_store.list_numbers(db) == []
    number_store.add_numbers(db, [rec("+13125550142", route="seq")], now="2026-12-01T00:00:00.000Z")
    again = number_store.get_number(db, "+13125550142")
    assert again.status == "active" and again.route == "seq" and again.added_at == NOW


def test_config_numbers_cannot_be_changed_from_the_cli(db) -> None:
    decl = TrackingNumberDecl("+13125550142", "billboard", None, "one")
    plan = plan_config_sync((decl,), number_store.all_numbers(db))
    number_store.apply_sync(db, plan, now=NOW)
    with pytest.raises(StoreError, match="declared in the config"):
        number_store.release_number(db, "+13125550142", now=NOW)
    with pytest.raises(StoreError, match="declared in the config"):
        number_store.update_assignment(
            db, "+13125550142", source=None, pool=None, route="seq", label=None, now=NOW
        )


@pytest.mark.parametrize(
    ("existing", "decls", "expect"),
    [
        ([], ["+13125550142"], (1, 0, 0, 0)),
        ([("+13125550142", "config")], ["+13125550142"], (0, 0, 0, 0)),
        ([("+13125550142", "config")], [], (0, 0, 1, 0)),
        ([("+13125550142", "cli")], ["+13125550142"], (0, 0, 0, 1)),
    ],
    ids=["new", "unchanged", "removed from yaml", "owned by the cli"],
)
def test_config_sync_plan(db, existing, decls, expect) -> None:
    for number, owner in existing:
        number_store.add_numbers(db, [rec(number, owner)], now=NOW)
    plan = plan_config_sync(
        tuple(TrackingNumberDecl(n, "billboard", None, "one") for n in decls),
        number_store.all_numbers(db),
    )
    got = (len(plan.insert), len(plan.update), len(plan.release), len(plan.conflicts))
    assert got == expect


def test_call_row_lifecycle_with_legs(db) -> None:
    flow = CallFlow(config())
    actions = flow.handle(
        Inbound(
            at(0),
            "+13125550142",
            NumberInfo("+13125550142", "billboard", None, "all"),
            "+13125550100",
            "Caller",
        )
    )
    start = actions[0]
    assert isinstance(start, StartCall)
    call_id = call_store.insert_call(db, start, channel_id="chan-1", linkedid="chan-1")
    call_store.insert_step(db, call_id, actions[1])
    row = call_store.get_call(db, call_id)
    assert row["status"] == "in_progress" and len(row["legs"]) == 3
    assert [r["id"] for r in call_store.open_calls(db)] == [call_id]
    fin_step, fin_call = flow.handle(Ended(at(10), DialResult("ANSWER", 10000, 7000, 16, "phone3")))
    call_store.finish_step(db, call_id, fin_step)
    call_store.finish_call(db, call_id, fin_call)
    row = call_store.get_call(db, call_id)
    assert row["outcome"] == "answered" and row["answered_by"] == "desk-3"
    assert row["ring_seconds"] == 3.0 and row["talk_seconds"] == 7.0
    assert [leg["result"] for leg in row["legs"]] == ["cancelled", "cancelled", "answered"]
    assert row["path"][0]["rings"][2]["result"] == "answered"
    assert call_store.open_calls(db) == []
    assert call_store.call_by_channel(db, "chan-1")["id"] == call_id
    assert [c["id"] for c in call_store.list_calls(db, outcome="answered")] == [call_id]


def test_channel_ids_are_unique(db) -> None:
    start = StartCall(NOW, "+13125550142", None, None, None, None, None)
    call_store.insert_call(db, start, channel_id="c1", linkedid=None)
    with pytest.raises(sqlite3.IntegrityError):
        call_store.insert_call(db, start, channel_id="c1", linkedid=None)


def test_route_memory_round_trip(db) -> None:
    save_route_memory(db, "rr", RouteMemory.from_dict({"desk-1": -2, "desk-2": 1}), now=NOW)
    save_route_memory(db, "rr", RouteMemory.from_dict({"desk-1": -1, "desk-2": -1}), now=NOW)
    assert load_route_memory(db)["rr"].as_dict() == {"desk-1": -1, "desk-2": -1}


async def test_writer_group_commit_isolates_a_failing_job(tmp_path) -> None:
    import asyncio

    from ctm_pbx.adapters.store.writer import StoreWriter

    writer = StoreWriter(str(tmp_path / "w.db"))
    writer.run_sync(migrate)

    def add(db, number):
        number_store.add_numbers(db, [rec(number)], now=NOW)

    def fail(db):
        db.conn.execute("UPDATE tracking_numbers SET label = 'half-done'")
        raise RuntimeError("job failed")

    results = await asyncio.gather(
        *(writer.run(add, f"+1312555{100 + i:04d}") for i in range(20)),
        writer.run(fail),
        writer.run(add, "+13125550142"),
        return_exceptions=True,
    )
    assert [type(r).__name__ for r in results].count("RuntimeError") == 1
    numbers = writer.run_sync(lambda db: number_store.list_numbers(db))
    assert len(numbers) == 21 and all(n.label == "" for n in numbers), "the failed job left nothing"
    writer.close()
    reopened = open_db(tmp_path / "w.db")
    assert len(number_store.list_numbers(reopened)) == 21, "committed, not just visible"
