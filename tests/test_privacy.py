"""``privacy forget``: nothing of the person is left anywhere in the database, nothing
of anyone else is lost."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from ctm_pbx.adapters.config_loader import parse_config
from ctm_pbx.adapters.store import call_search, migrate, open_db, outbox
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.core.reports import Filters
from ctm_pbx.edges.cli import main, sync_config_numbers
from tests.test_retention import call, visit
from tests.test_web_api import CONFIG

ONE_NUMBER = CONFIG.replace('  - {number: "+13125550151", pool: gads, route: main}\n', "")
NOW = datetime.now(UTC).replace(microsecond=0)
A_CALLER, B_CALLER = "+17735550101", "+17735550202"
A_IP, B_IP = "203.0.113.41", "198.51.100.52"


def values_anywhere(db, values: list[str]) -> list[str]:
    """Where any of ``values`` appears in any column of any table (``table.column: value``)."""
    found = []
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        for column in [r[1] for r in db.execute(f'PRAGMA table_info("{table}")')]:
            for value in values:
                hit = db.execute(
                    f'SELECT 1 FROM "{table}" WHERE instr(CAST("{column}" AS TEXT), ?) > 0',
                    (value,),
                ).fetchone()
                if hit:
                    found.append(f"{table}.{column}: {value}")
    return found


@pytest.fixture
def world(tmp_path: Path):
    """Person A (a visitor who then called, twice) and person B, who took A's pool number
    later and called: A is among the candidates of B's call."""
    media = tmp_path / "monitor"
    media.mkdir()
    text = (
        ONE_NUMBER
        + "database: {path: ctm.db}\n"
        + f"asterisk:\n  recordings: {{dir: /var/spool/asterisk/monitor, local_dir: {media}}}\n"
    )
    conf = tmp_path / "config.yaml"
    conf.write_text(text, encoding="utf-8")
    cfg = parse_config(text, env={}, base_dir=tmp_path)
    db = open_db(cfg.database.path)
    migrate(db)
    sync_config_numbers(cfg, db)
    a = visit(db, cfg, NOW - timedelta(hours=5), ip=A_IP, tag="GCLID-OF-A")
    a_calls = [
        call(db, cfg, NOW - timedelta(hours=5, minutes=-2), A_CALLER, to=a,
             comment="Alex Example asked for a quote"),
        call(db, cfg, NOW - timedelta(hours=4), A_CALLER, to=a),
    ]  # fmt: skip
    b = visit(db, cfg, NOW - timedelta(hours=2), ip=B_IP, tag="GCLID-OF-B")
    b_call = call(db, cfg, NOW - timedelta(hours=2, minutes=-1), B_CALLER, to=b,
                  comment="B wants a callback")  # fmt: skip
    with db.conn:  # A's name only on A's calls
        db.conn.execute("UPDATE calls SET caller_name = 'Alex Example' WHERE caller_number = ?",
                        (A_CALLER,))  # fmt: skip
    listed = call_store.get_call(db, b_call)["attribution_candidates"]
    assert a.visitor_id in {c["visitor_id"] for c in listed}, "A is a candidate of B's call"
    db.conn.close()
    return conf, cfg, a, b, a_calls, b_call


def a_values(a) -> list[str]:
    return [
        a.visitor_id,
        a.visit_id,
        A_IP,
        A_CALLER,
        A_CALLER[2:],  # the national digits
        "Alex Example",
        "GCLID-OF-A",
    ]


def test_forget_a_visitor_and_their_number_leaves_nothing_of_them(world, tmp_path) -> None:
    conf, cfg, a, b, a_calls, b_call = world
    folder = Path(cfg.asterisk.recordings.readable_dir)
    before = sorted(p.name for p in folder.iterdir())
    db = sqlite3.connect(cfg.database.path)
    assert len(values_anywhere(db, a_values(a))) > 10  # the test finds them where they are
    db.close()

    result = CliRunner().invoke(
        main,
        ["--config", str(conf), "privacy", "forget", "--visitor", a.visitor_id,
         "--caller", "(773) 555-0101"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"visitor {a.visitor_id}:\n  deleted 1 visitor(s), 1 visit(s), 1 lease(s)" in out
    assert f"off 2 call(s) attributed to them: {a_calls[0]}, {a_calls[1]}" in out
    assert f"made 2 call(s) anonymous: {a_calls[0]}, {a_calls[1]}" in out
    assert "removed from the attribution candidates of 1 call(s)" in out
    assert "caller (773) 555-0101:" in out and "deleted 4 recording/voicemail file(s)" in out

    db = sqlite3.connect(cfg.database.path)
    assert values_anywhere(db, a_values(a)) == []
    db.row_factory = sqlite3.Row
    rows = {r["id"]: dict(r) for r in db.execute("SELECT * FROM calls")}
    for call_id in a_calls:  # counted still: when, where to, source, outcome
        row = rows[call_id]
        assert row["source"] == "google-ads" and row["outcome"] == "answered"
        assert row["talk_seconds"] == 178.0 and row["tags"] == ",lead," * (call_id == a_calls[0])
        assert row["caller_zip"] is None and row["ivr_digits"] is None and row["comment"] == ""
        assert row["recording_path"] is None and row["attribution_reason"].endswith("on request")
    # B: all there
    b_row = rows[b_call]
    assert b_row["caller_number"] == B_CALLER and b_row["comment"] == "B wants a callback"
    assert b_row["visitor_id"] == b.visitor_id and b_row["recording_path"]
    assert {c["visitor_id"] for c in json.loads(b_row["attribution_candidates_json"])} == {
        b.visitor_id,
        None,
    }
    assert db.execute("SELECT count(*) FROM visits WHERE ip = ?", (B_IP,)).fetchone()[0] == 1
    db.close()
    after = sorted(p.name for p in folder.iterdir())
    assert len(before) == 6 and len(after) == 2 and set(after) < set(before)


def test_forget_a_caller_names_the_visitor_their_calls_were_attributed_to(world) -> None:
    conf, cfg, a, _b, _a_calls, _b_call = world
    result = CliRunner().invoke(
        main, ["--config", str(conf), "privacy", "forget", "--caller", A_CALLER]
    )
    assert result.exit_code == 0, result.output
    assert f"ctm-pbx privacy forget --visitor {a.visitor_id}" in result.output
    db = sqlite3.connect(cfg.database.path)
    left = values_anywhere(db, [A_CALLER, "Alex Example"])
    assert left == []
    assert values_anywhere(db, [A_IP])  # the visit is the visitor's, not forgotten here
    db.close()


def test_forget_someone_unknown_and_no_option(world) -> None:
    conf, *_ = world
    runner = CliRunner()
    result = runner.invoke(main, ["--config", str(conf), "privacy", "forget", "--visitor", "nope"])
    assert result.exit_code == 0 and "nothing stored for them" in result.output
    result = runner.invoke(main, ["--config", str(conf), "privacy", "forget"])
    assert result.exit_code == 2 and "give --visitor ID or --caller NUMBER" in result.output


def test_a_comment_is_erased_with_the_caller_not_the_tags(world) -> None:
    _conf, cfg, _a, _b, a_calls, _b_call = world
    from ctm_pbx.adapters.store import privacy

    db = open_db(cfg.database.path)
    privacy.forget_caller(db, [A_CALLER], cfg.asterisk.recordings.readable_dir)
    row = call_search.search_calls(db, Filters(tag="lead"), limit=10, full=True)
    assert [r["id"] for r in row if r["id"] in a_calls] == [a_calls[0]]
    db.conn.close()


def test_the_daemons_lease_index_forgets_what_another_process_erased(world) -> None:
    """The writer keeps recent leases in memory for attribution; once ``privacy forget``
    (another process) deleted a visitor's, a call to that number no longer finds them."""
    from ctm_pbx.adapters.store import leases as lease_store
    from ctm_pbx.adapters.store import privacy
    from ctm_pbx.adapters.store.writer import StoreWriter

    _conf, cfg, a, b, _a_calls, _b_call = world
    number = a.numbers["+13125550100"]["number"]
    since, until = NOW - timedelta(hours=24), NOW

    def holders(db) -> set[str]:
        return {lease.visitor_id for lease in lease_store.lease_history(db, number, since, until)}

    writer = StoreWriter(cfg.database.path)
    try:
        assert writer.run_sync(holders) == {a.visitor_id, b.visitor_id}  # now in memory
        other = open_db(cfg.database.path)  # the CLI, say
        privacy.forget_visitor(other, a.visitor_id)
        other.conn.close()
        assert writer.run_sync(holders) == {b.visitor_id}
    finally:
        writer.close()


def test_the_outbox_keeps_no_copy_of_a_forgotten_person(world) -> None:
    """Webhook bodies hold the call as it was sent: erasure drops them too."""
    conf, cfg, a, b, a_calls, b_call = world
    db = sqlite3.connect(cfg.database.path)
    with db:
        for call_id in [*a_calls, b_call]:
            row = db.execute("SELECT caller_number FROM calls WHERE id = ?", (call_id,)).fetchone()
            body = json.dumps(
                {
                    "call": {
                        "id": call_id,
                        "caller_number": row[0],
                        "visitor_id": a.visitor_id if call_id in a_calls else "",
                    }
                }
            )
            db.execute(
                "INSERT INTO outbox (event_id, destination, event_type, call_id, payload_json,"
                " state, next_attempt_at, created_at, queued_at)"
                " VALUES (?, 'webhooks.crm', 'call.completed', ?, ?, 'delivered', ?, ?, ?)",
                (f"evt_{call_id}", call_id, body, "t", "t", "t"),
            )  # fmt: skip
        db.execute(
            "INSERT INTO outbox (event_id, destination, event_type, call_id, payload_json,"
            " state, next_attempt_at, created_at, queued_at)"
            " VALUES ('evt_x', 'webhooks.crm', 'call.completed', 9999, '{\"other\": true}',"
            " 'delivered', 't', 't', 't')"
        )
    assert any(v.startswith("outbox.payload_json") for v in values_anywhere(db, a_values(a)))
    db.close()
    for option, value in (("--caller", A_CALLER), ("--visitor", a.visitor_id)):
        result = CliRunner().invoke(
            main, ["--config", str(conf), "privacy", "forget", option, value]
        )
        assert result.exit_code == 0, result.output
        assert "outbox event(s)" in result.output
    db = sqlite3.connect(cfg.database.path)
    assert not [v for v in values_anywhere(db, a_values(a)) if v.startswith("outbox")]
    # B's call listed A among its candidates, so its body (which holds them) goes too;
    # events of calls that are not A's, or did not name A, keep theirs
    left = dict(db.execute("SELECT call_id, payload_json FROM outbox").fetchall())
    assert left[b_call] == outbox.ERASED and left[9999] == '{"other": true}'
    db.close()


def test_a_body_made_before_an_erasure_is_not_written_back(world) -> None:
    """The delivery worker made an event's body from the call as it was, then the
    person was forgotten (another process) while it was being sent: what the worker
    writes afterwards keeps no copy, and a retry builds the body again."""
    conf, cfg, a, b, a_calls, b_call = world
    db = open_db(cfg.database.path)
    with db.conn:
        db.conn.execute(
            "INSERT INTO outbox (event_id, destination, event_type, call_id, state,"
            " next_attempt_at, created_at, queued_at)"
            " VALUES ('evt_a', 'webhooks.crm', 'call.completed', ?, 'pending', 't', 't', 't')",
            (a_calls[0],),
        )
    (sending,) = outbox.due(db, "webhooks.crm")
    assert sending.payload is None
    sending.payload = json.dumps({"caller_number": A_CALLER}).encode()  # made, being sent
    forget = ["--config", str(conf), "privacy", "forget", "--caller", A_CALLER]
    result = CliRunner().invoke(main, forget)
    assert result.exit_code == 0, result.output
    sending.state, sending.attempts = "failed", 1  # the receiver did not answer
    with db.conn:
        outbox.save(db, [sending])
    assert not [v for v in values_anywhere(db, a_values(a)) if v.startswith("outbox")]
    (retry,) = outbox.due(db, "webhooks.crm")
    assert retry.payload is None and retry.attempts == 1, "built again from the call as it is"
    db.conn.close()
