"""The writer's in-memory lease index answers exactly what the leases table answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctm_pbx.adapters.store import lease_index, migrate, open_db
from ctm_pbx.adapters.store import leases as store
from ctm_pbx.adapters.store import visitors as visitor_store
from ctm_pbx.adapters.store.db import atomic
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.core.clock import iso

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NUMBERS = ("+13125550201", "+13125550202")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def from_table(db, number: str, since: datetime, until: datetime):
    rows = db.conn.execute(store._LEASE_HISTORY, (number, iso(since), iso(until)))
    return [lease_index.lease_from_row(r) for r in rows]


@pytest.fixture
def db(tmp_path):
    database = open_db(tmp_path / "ctm.db")
    migrate(database)
    for i in range(4):
        visitor_store.upsert_visitor(database, f"v{i}", now=T0)
    yield database
    database.conn.close()


def lease(db, number=NUMBERS[0], visitor="v0", start=0.0, end=30.0) -> int:
    return store.insert_lease(
        db,
        number=number,
        pool="web",
        visitor_id=visitor,
        visit_id=None,
        now=at(start),
        expires_at=at(end),
    )


def test_without_an_index_history_comes_from_the_table(db) -> None:
    lease(db, start=0, end=30)
    assert lease_index.of(db) is None
    assert store.lease_history(db, NUMBERS[0], at(-60), at(10)) == from_table(
        db, NUMBERS[0], at(-60), at(10)
    )


def test_a_number_is_read_once_then_kept_up_to_date_in_memory(db) -> None:
    index = lease_index.attach(db)
    first = lease(db, visitor="v0", start=0, end=30)
    assert [x.id for x in store.lease_history(db, NUMBERS[0], at(-60), at(10))] == [first]
    assert index.loads == 1
    second = lease(db, visitor="v1", start=12.00001, end=42)  # 0.6 ms: stored as 0 ms
    store.renew_lease(db, first, at(15), at(45), number=NUMBERS[0])
    store.renew_lease(db, second, at(13), at(50))  # number looked up
    got = store.lease_history(db, NUMBERS[0], at(-45), at(20))
    assert got == from_table(db, NUMBERS[0], at(-45), at(20))
    assert [(x.id, x.last_active_at, x.expires_at) for x in got] == [
        (first, at(15), at(45)),
        (second, at(13), at(50)),
    ]
    assert index.loads == 1, "later lookups and writes never went back to the table"


def test_times_compare_to_the_millisecond_as_the_table_does(db) -> None:
    lease_index.attach(db)
    lease(db, start=0, end=30)
    half_ms = timedelta(microseconds=500)
    since, until = at(30) + half_ms, at(40)  # the lease ended in the same millisecond
    assert len(from_table(db, NUMBERS[0], since, until)) == 1
    assert store.lease_history(db, NUMBERS[0], since, until) == from_table(
        db, NUMBERS[0], since, until
    )


def test_a_window_further_back_reloads_the_number(db) -> None:
    index = lease_index.attach(db)
    old = lease(db, start=-300, end=-250)
    assert store.lease_history(db, NUMBERS[0], at(-60), T0) == []
    assert store.lease_history(db, NUMBERS[0], at(-100), T0) == [], "within the slack"
    assert index.loads == 1
    assert [x.id for x in store.lease_history(db, NUMBERS[0], at(-280), T0)] == [old]
    assert index.loads == 2


def test_a_rolled_back_write_leaves_nothing_in_the_index(db) -> None:
    lease_index.attach(db)
    kept = lease(db)
    assert len(store.lease_history(db, NUMBERS[0], at(-60), at(10))) == 1
    with pytest.raises(RuntimeError), atomic(db, "job"):
        lease(db, visitor="v1", start=1, end=31)
        store.renew_lease(db, kept, at(5), at(99), number=NUMBERS[0])
        raise RuntimeError("the job failed")
    got = store.lease_history(db, NUMBERS[0], at(-60), at(10))
    assert [(x.id, x.expires_at) for x in got] == [(kept, at(30))]


def test_pruning_keeps_about_one_window(db, monkeypatch) -> None:
    monkeypatch.setattr(lease_index, "PRUNE_EVERY", 10)
    index = lease_index.attach(db)
    store.lease_history(db, NUMBERS[0], at(-60), T0)  # a 60-minute window
    for i in range(200):  # one lease a minute, each 5 minutes long
        lease(db, visitor=f"v{i % 4}", start=i, end=i + 5)
    assert index.size() <= 60 + 60 + 5 + 10  # window, slack, a lease, the prune interval
    got = store.lease_history(db, NUMBERS[0], at(140), at(199))
    assert got == from_table(db, NUMBERS[0], at(140), at(199))


def test_the_writer_keeps_an_index_and_a_failed_job_empties_it(tmp_path) -> None:
    writer = StoreWriter(str(tmp_path / "w.db"))
    try:
        writer.run_sync(migrate)
        writer.run_sync(visitor_store.upsert_visitor, "v0", now=T0)
        writer.run_sync(lease)
        assert len(writer.run_sync(store.lease_history, NUMBERS[0], at(-60), T0)) == 1

        def failing(db) -> None:
            lease(db, start=1, end=31)
            raise ValueError("boom")

        with pytest.raises(ValueError):
            writer.run_sync(failing)
        index = writer.run_sync(lease_index.of)
        assert index is not None and index.size() == 0
        assert len(writer.run_sync(store.lease_history, NUMBERS[0], at(-60), at(5))) == 1
    finally:
        writer.close()


# quarter minutes, plus up to 2 ms so that times fall between the table's milliseconds
minutes = st.builds(
    lambda quarter, us: quarter / 4 + us / 60e6,
    st.integers(min_value=-1200, max_value=1200),
    st.integers(min_value=0, max_value=2000),
)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("lease"), st.sampled_from(NUMBERS), minutes, st.integers(1, 90)),
        st.tuples(st.just("renew"), st.integers(0, 30), minutes, st.integers(1, 90)),
        st.tuples(st.just("ask"), st.sampled_from(NUMBERS), minutes, st.integers(0, 240)),
        st.tuples(st.just("fail"), st.sampled_from(NUMBERS), minutes, st.integers(1, 90)),
    ),
    max_size=40,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=ops)
def test_any_sequence_of_writes_and_lookups_matches_the_table(db, ops) -> None:
    db.conn.execute("DELETE FROM leases")
    lease_index.invalidate(db)
    lease_index.attach(db)
    ids: list[int] = []
    for op, a, minute, n in ops:
        if op == "lease":
            ids.append(
                lease(db, number=a, visitor=f"v{len(ids) % 4}", start=minute, end=minute + n)
            )
        elif op == "renew" and ids:
            lease_id = ids[a % len(ids)]
            store.renew_lease(db, lease_id, at(minute), at(minute + n))
        elif op == "fail":
            with pytest.raises(RuntimeError), atomic(db, "job"):
                lease(db, number=a, start=minute, end=minute + n)
                raise RuntimeError
        elif op == "ask":
            since, until = at(minute - n), at(minute)
            assert store.lease_history(db, a, since, until) == from_table(db, a, since, until)
    for number in NUMBERS:
        since, until = at(-400), at(400)
        assert store.lease_history(db, number, since, until) == from_table(db, number, since, until)
