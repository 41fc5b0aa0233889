"""Retention: the ages in config, what is due, and the purge through the one writer."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from ctm_pbx.adapters.call_attribution import attribute_call
from ctm_pbx.adapters.config_loader import ConfigError, parse_config
from ctm_pbx.adapters.store import call_search, migrate, open_db, retention
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store.writer import StoreWriter
from ctm_pbx.adapters.visits import VisitRequest, handle_visit
from ctm_pbx.core.call.actions import FinishCall, Outcome, RecordInput, StartCall
from ctm_pbx.core.clock import iso
from ctm_pbx.core.geo import Location
from ctm_pbx.core.retention import Age, AgeError, RetentionSettings, cutoffs, parse_age
from ctm_pbx.edges.cli import main, sync_config_numbers
from tests.helpers import BROWSER_UA
from tests.test_web_api import CONFIG, SHOP

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
POOL_NUMBER = "+13125550150"
TARGET = "+13125550100"


# -- the rules -------------------------------------------------------------------------


def test_ages_as_written() -> None:
    assert parse_age("30d") == Age(30, "d")
    assert parse_age(" 13 months ") == Age(13, "mo")
    assert parse_age("1 year") == Age(1, "y")
    assert parse_age("6w") == Age(6, "w")
    assert parse_age("Forever") is None
    for bad in ("0d", "13m", "-1d", "30", "soon", "1.5y"):
        with pytest.raises(AgeError, match="expected an age like"):
            parse_age(bad)


def test_months_count_from_the_date() -> None:
    assert Age(13, "mo").before(NOW) == datetime(2025, 11, 3, 12, 0, tzinfo=UTC)
    assert Age(1, "mo").before(datetime(2026, 3, 31, tzinfo=UTC)) == datetime(
        2026, 2, 28, tzinfo=UTC
    )
    assert Age(2, "y").before(datetime(2028, 2, 29, tzinfo=UTC)) == datetime(
        2026, 2, 28, tzinfo=UTC
    )
    assert Age(30, "d").before(NOW) == NOW - timedelta(days=30)


def test_defaults_and_forever() -> None:
    cut = cutoffs(RetentionSettings(), NOW)
    assert cut.visitor_details == NOW - timedelta(days=30)
    assert cut.visits == datetime(2025, 11, 3, 12, 0, tzinfo=UTC)
    assert cut.calls is cut.recordings is cut.voicemail is None


def test_config_errors_name_the_key_and_line() -> None:
    text = "retention:\n  visits: 13 moons\n  calls: 0d\n  recording: 30d\n  purge: maybe\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, env={})
    lines = str(err.value).splitlines()
    assert lines[0].startswith("<string>:2: retention.visits: expected an age like")
    assert lines[1].startswith("<string>:3: retention.calls: expected an age like")
    assert "<string>:4: retention.recording: unknown key 'recording'" in lines[2]
    assert "did you mean 'recordings'" in lines[2]
    assert lines[3] == "<string>:5: retention.purge: expected true or false, got 'maybe'"


def test_config_reads_every_setting() -> None:
    cfg = parse_config(
        "retention: {visitor_details: 7d, visits: 2y, calls: 5y, recordings: 90d,"
        " voicemail: null, purge: false}\n",
        env={},
    )
    r = cfg.retention
    assert (r.visitor_details, r.visits, r.calls) == (Age(7, "d"), Age(2, "y"), Age(5, "y"))
    assert (r.recordings, r.voicemail, r.purge) == (Age(90, "d"), None, False)


# -- a store with visits and calls of several ages --------------------------------------


def make_config(tmp_path: Path, retention_yaml: str = ""):
    media = tmp_path / "monitor"
    media.mkdir(exist_ok=True)
    text = (
        CONFIG
        + f"asterisk:\n  recordings: {{dir: /var/spool/asterisk/monitor, local_dir: {media}}}\n"
    )
    return parse_config(text + retention_yaml, env={}, base_dir=tmp_path)


def visit(db, cfg, at: datetime, *, visitor: str | None = None, ip: str = "203.0.113.7", tag="A"):
    """A visit from Google Ads (a pool lease) at ``at``."""
    with db.conn:
        return handle_visit(
            db,
            cfg,
            VisitRequest(visitor, f"{SHOP}/?gclid={tag}", ip=ip, user_agent=BROWSER_UA),
            at,
        )


def call(
    db, cfg, at: datetime, caller: str, *, to=None, media: bool = True, comment: str = ""
) -> int:
    """A call at ``at`` to the number the visit ``to`` was shown (else the first pool
    number), attributed, answered, with a recording and a voicemail file in the
    recordings folder, the caller's ZIP and a comment."""
    location = Location("US", "IL", "Chicago, IL", "312")
    number = to.numbers[TARGET]["number"] if to is not None else POOL_NUMBER
    start = StartCall(iso(at), number, caller, "Pat Doe", "google-ads", "gads", "main", location)
    channel = f"{at.timestamp():.0f}.{caller[-4:]}"
    with db.conn:
        call_id = call_store.insert_call(db, start, channel_id=channel, linkedid=channel)
        attribute_call(db, cfg, call_id, start, at)
        zip_at = Location("US", "IL", "Chicago, IL", zip="60601", county="Cook", source="zip")
        call_store.record_input(db, call_id, RecordInput("160601", zip_at))
        end = iso(at + timedelta(minutes=3))
        call_store.finish_call(
            db,
            call_id,
            FinishCall(
                end, iso(at), Outcome.ANSWERED, 16, 2.0, 178.0, "desk", "+13125550101", False, ()
            ),  # fmt: skip
        )
        if media:
            folder = Path(cfg.asterisk.recordings.readable_dir)
            for kind, name in (
                ("recording", f"ctm-{channel}.wav"),
                ("voicemail", f"ctm-vm-{channel}.wav"),
            ):
                (folder / name).write_bytes(b"RIFF" + bytes(100))
                call_store.record_media(
                    db, call_id, kind, f"{cfg.asterisk.recordings.dir}/{name}", 3.0
                )
        if comment:
            call_search.annotate_call(db, call_id, ["lead"], comment)
    return call_id


@pytest.fixture
def store(tmp_path: Path):
    def build(retention_yaml: str = ""):
        cfg = make_config(tmp_path, retention_yaml)
        db = open_db(tmp_path / "ctm.db")
        migrate(db)
        sync_config_numbers(cfg, db)
        return cfg, db

    return build


def table_count(db, table: str, where: str = "1") -> int:
    return db.conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]


def test_purge_blanks_addresses_and_deletes_old_visits_and_calls(store, tmp_path: Path) -> None:
    cfg, db = store("retention: {calls: 2y, recordings: 90d}\n")
    ancient = visit(db, cfg, NOW - timedelta(days=800), tag="OLD")  # everything goes
    old_call = call(db, cfg, NOW - timedelta(days=800, minutes=-1), "+17735550001", to=ancient)
    year = visit(db, cfg, NOW - timedelta(days=400), tag="YEAR")  # visit deleted, call kept
    year_call = call(db, cfg, NOW - timedelta(days=400, minutes=-1), "+17735550002", to=year)
    month = visit(db, cfg, NOW - timedelta(days=40), tag="MONTH")  # address blanked
    fresh = visit(db, cfg, NOW - timedelta(days=2), tag="NEW")  # untouched
    fresh_call = call(db, cfg, NOW - timedelta(days=2, minutes=-1), "+17735550003", to=fresh)
    folder = Path(cfg.asterisk.recordings.readable_dir)
    assert len(list(folder.iterdir())) == 6

    cut = cutoffs(cfg.retention, NOW)
    due = retention.due(db, cut)
    counts, problems = retention.purge(retention.committing(db), cut, str(folder), batch=2)
    assert problems == []
    assert counts == due  # the dry run said what the purge did
    assert counts.visits_blanked == 1 and counts.leases_blanked == 1  # the month-old visit
    assert (counts.visits_deleted, counts.visitors_deleted) == (2, 2)
    assert counts.leases_deleted == 2
    assert counts.calls_deleted == 1
    assert (counts.recordings_deleted, counts.voicemail_deleted) == (2, 1)  # voicemail: for ever

    visits = {r[0]: r[1:] for r in db.conn.execute("SELECT visitor_id, ip, user_agent FROM visits")}
    assert set(visits) == {month.visitor_id, fresh.visitor_id}
    assert visits[month.visitor_id] == (None, None)
    assert visits[fresh.visitor_id] == ("203.0.113.7", BROWSER_UA)
    assert table_count(db, "leases", "client IS NOT NULL") == 1
    assert {r[0] for r in db.conn.execute("SELECT id FROM visitors")} == {
        month.visitor_id,
        fresh.visitor_id,
    }
    assert ancient.visitor_id and year.visitor_id
    assert call_store.get_call(db, old_call) is None
    assert table_count(db, "call_legs", f"call_id = {old_call}") == 0
    kept = call_store.get_call(db, year_call)
    assert kept["recording_path"] is None and kept["voicemail_path"]
    assert kept["recording_seconds"] == 3.0  # its length stays
    assert kept["source"] == "google-ads" and kept["landing_url"]  # the attribution stays
    assert call_store.get_call(db, fresh_call)["recording_path"]
    assert sorted(p.name.startswith("ctm-vm-") for p in folder.iterdir()) == [False, True, True]

    again, _ = retention.purge(retention.committing(db), cut, str(folder))
    assert again.total == 0 and retention.due(db, cut).total == 0


def test_purge_never_deletes_files_outside_its_own_names(store, tmp_path: Path) -> None:
    cfg, db = store("retention: {recordings: 30d}\n")
    call_id = call(db, cfg, NOW - timedelta(days=60), "+17735550001", media=False)
    other = Path(cfg.asterisk.recordings.readable_dir) / "someone-elses.wav"
    other.write_bytes(b"x")
    with db.conn:
        call_store.record_media(db, call_id, "recording", "/etc/passwd", 1.0)
        call_store.record_media(db, call_id, "voicemail", str(other), 1.0)
    counts, _ = retention.purge(
        retention.committing(db), cutoffs(cfg.retention, NOW), cfg.asterisk.recordings.readable_dir
    )
    assert other.exists() and Path("/etc/passwd").exists()
    assert counts.recordings_deleted == 1  # the reference goes, never the file
    assert call_store.get_call(db, call_id)["recording_path"] is None


def undeletable(folder: Path):
    """Make the files in ``folder`` undeletable (immutable as root, else a read-only
    folder); returns the undo."""
    import os
    import subprocess

    files = [str(p) for p in folder.iterdir()]
    if os.geteuid() == 0:
        marked = subprocess.run(["chattr", "+i", *files], capture_output=True, text=True)
        if marked.returncode != 0:
            pytest.skip(f"no immutable attribute here: {marked.stderr.strip()}")
        return lambda: subprocess.run(["chattr", "-i", *files], check=True)
    folder.chmod(0o500)
    return lambda: folder.chmod(0o700)


def test_a_file_that_cannot_be_deleted_keeps_its_reference(store, tmp_path: Path) -> None:
    cfg, db = store("retention: {recordings: 30d, voicemail: 30d}\n")
    call_id = call(db, cfg, NOW - timedelta(days=60), "+17735550001")
    folder = Path(cfg.asterisk.recordings.readable_dir)
    undo = undeletable(folder)
    try:
        counts, problems = retention.purge(
            retention.committing(db), cutoffs(cfg.retention, NOW), str(folder)
        )
    finally:
        undo()
    assert counts.recordings_deleted == counts.voicemail_deleted == 0
    assert len(problems) == 2 and "its reference stays" in problems[0]
    row = call_store.get_call(db, call_id)
    assert row["recording_path"] and row["voicemail_path"]
    assert len(list(folder.iterdir())) == 2


def test_every_batch_is_an_index_range(store) -> None:
    """No batch scans a table: each reads a range of an index (m018), however large the
    history already blanked or kept."""
    _cfg, db = store()
    sqls = {
        "visits blanked": (f"SELECT rowid {retention._IDENTIFYING_VISITS} LIMIT 5", ("x",)),
        "leases blanked": (f"SELECT id {retention._IDENTIFYING_LEASES} LIMIT 5", ("x",)),
        "visits deleted": (
            f"SELECT id {retention._DUE_VISITS} ORDER BY started_at LIMIT 5",
            ("x",),
        ),
        "files": (retention._MEDIA, ("x", "", "", 0, 5)),
        "calls": (retention._OLD_CALLS, ("x", "", "", 0, 5)),
        "leases by visit": ("SELECT id FROM leases WHERE visit_id IN ('a', 'b')", ()),
    }
    for what, (sql, args) in sqls.items():
        plan = " ".join(r[-1] for r in db.conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))
        assert "USING" in plan and "SCAN" not in plan.replace("SCAN CONSTANT", ""), (what, plan)


def test_the_daemons_purge_goes_through_the_writer_between_other_writes(
    tmp_path: Path,
) -> None:
    """Batches of the purge through the one writer while another thread writes rows: both
    finish, and no batch holds the writer long (each write waits less than a batch)."""
    cfg = make_config(tmp_path)
    writer = StoreWriter(str(tmp_path / "ctm.db"))
    try:
        writer.run_sync(migrate)
        writer.run_sync(lambda db: sync_config_numbers(cfg, db))
        old = NOW - timedelta(days=500)

        def seed(db, n: int) -> None:
            for i in range(n):
                at = old + timedelta(seconds=i)
                handle_visit(
                    db, cfg, VisitRequest(None, f"{SHOP}/?gclid=G{i}", ip="198.51.100.9",
                                          user_agent=BROWSER_UA), at,
                )  # fmt: skip

        writer.run_sync(seed, 3000)
        stop = threading.Event()
        waits: list[float] = []

        def other_writes() -> None:
            import time

            i = 0
            while not stop.is_set():
                t0 = time.monotonic()
                writer.run_sync(
                    lambda db, i=i: db.conn.execute(
                        "INSERT INTO route_state VALUES (?, '{}', '')", (f"r{i}",)
                    )
                )
                waits.append(time.monotonic() - t0)
                i += 1

        thread = threading.Thread(target=other_writes)
        thread.start()
        try:
            counts, _ = retention.purge(
                writer.run_sync, cutoffs(cfg.retention, NOW), str(tmp_path), batch=100
            )
        finally:
            stop.set()
            thread.join()
        assert counts.visits_deleted == 3000 and counts.visitors_deleted == 3000
        assert len(waits) > 30  # the other writes went on during the purge
        assert max(waits) < 1.0
        left = writer.run_sync(lambda db: table_count(db, "visits"))
        assert left == 0
    finally:
        writer.close()


def test_the_daemon_purges_once_started(tmp_path: Path) -> None:
    from ctm_pbx.edges.daemon import Daemon

    cfg = make_config(tmp_path, "database: {path: ctm.db}\n")
    db = open_db(cfg.database.path)
    migrate(db)
    sync_config_numbers(cfg, db)
    visit(db, cfg, datetime.now(UTC) - timedelta(days=40))
    db.conn.close()

    async def go() -> None:
        daemon = Daemon(cfg)
        task = asyncio.create_task(daemon._purge(first_s=0.01))
        for _ in range(200):
            await asyncio.sleep(0.02)
            n = await daemon.writer.run(lambda db: table_count(db, "visits", "ip IS NOT NULL"))
            if n == 0:
                break
        daemon.stop.set()
        await task
        daemon.writer.close()
        assert n == 0

    asyncio.run(go())


# -- the CLI ----------------------------------------------------------------------------


def test_db_purge_dry_run_changes_nothing_then_purge(tmp_path: Path) -> None:
    media = tmp_path / "monitor"
    media.mkdir()
    conf = tmp_path / "config.yaml"
    conf.write_text(
        CONFIG + "database: {path: ctm.db}\nretention: {visits: 30d}\n", encoding="utf-8"
    )
    runner = CliRunner()
    assert runner.invoke(main, ["--config", str(conf), "db", "migrate"]).exit_code == 0
    cfg = make_config(tmp_path, "retention: {visits: 30d}\n")
    db = open_db(tmp_path / "ctm.db")
    visit(db, cfg, datetime.now(UTC) - timedelta(days=45))
    db.conn.close()
    before = (tmp_path / "ctm.db").read_bytes()
    dry = runner.invoke(main, ["--config", str(conf), "db", "purge", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would remove (dry run, nothing changed)" in dry.output
    assert "  visits deleted: 1" in dry.output and "visits: kept 30 days" in dry.output.replace(
        "visits, their page views and leases", "visits"
    )
    assert (tmp_path / "ctm.db").read_bytes() == before
    done = runner.invoke(main, ["--config", str(conf), "db", "purge"])
    assert done.exit_code == 0, done.output
    assert "removed:" in done.output and "  visits deleted: 1" in done.output
    again = runner.invoke(main, ["--config", str(conf), "db", "purge", "--dry-run"])
    assert "  visits deleted: 0" in again.output


def test_a_daemon_stopping_ends_its_purge_between_two_batches(tmp_path: Path) -> None:
    import time

    from ctm_pbx.edges.daemon import Daemon

    cfg = make_config(tmp_path, "database: {path: ctm.db}\n")
    db = open_db(cfg.database.path)
    migrate(db)
    sync_config_numbers(cfg, db)
    old = datetime.now(UTC) - timedelta(days=500)
    with db.conn:
        for i in range(3000):
            req = VisitRequest(None, f"{SHOP}/?s={i}", ip="198.51.100.9", user_agent=BROWSER_UA)
            handle_visit(db, cfg, req, old + timedelta(seconds=i))
    db.conn.close()

    async def go() -> tuple[float, int]:
        daemon = Daemon(cfg)
        task = asyncio.create_task(daemon._purge(first_s=0))
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        daemon.stop.set()
        await task
        stopped = time.monotonic() - t0
        left = await daemon.writer.run(lambda db: table_count(db, "visits"))
        daemon.writer.close()
        return stopped, left

    stopped, left = asyncio.run(go())
    assert 0 < left < 3000, "it had begun and not finished"
    assert stopped < 1.0


def test_outbox_events_done_with_go_after_their_age_and_pending_ones_stay(tmp_path) -> None:
    db = open_db(tmp_path / "o.db")
    migrate(db)
    old, new = "2026-01-01T00:00:00.000Z", "2026-12-02T00:00:00.000Z"
    rows = [(old, "delivered"), (old, "dead"), (old, "skipped"), (old, "pending"),
            (old, "failed"), (new, "delivered")]  # fmt: skip
    with db.conn:
        for i, (at, state) in enumerate(rows):
            db.conn.execute(
                "INSERT INTO outbox (event_id, destination, event_type, call_id, payload_json,"
                " state, next_attempt_at, created_at, queued_at)"
                " VALUES (?, 'webhooks.crm', 'call.completed', 1, '{}', ?, ?, ?, ?)",
                (f"evt_{i}", state, at, at, at),
            )  # fmt: skip
    cut = cutoffs(RetentionSettings(), datetime(2026, 12, 3, tzinfo=UTC))
    assert retention.due(db, cut).events_deleted == 3
    counts, problems = retention.purge(retention.committing(db), cut, str(tmp_path))
    assert counts.events_deleted == 3 and not problems
    left = [r[0] for r in db.execute("SELECT state FROM outbox ORDER BY id")]
    assert left == ["pending", "failed", "delivered"]
