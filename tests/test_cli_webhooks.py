"""``ctm-pbx webhooks list|show|retry|test`` against a database the outbox filled, and
a real receiver on loopback (in its own thread: the CLI runs its own event loop)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ctm_pbx.adapters.config_loader import load_config
from ctm_pbx.adapters.store import open_db, outbox
from ctm_pbx.adapters.store.schema import migrate
from ctm_pbx.edges.cli import main
from tests.helpers import BASE
from tests.outbox_helpers import ThreadReceiver, whole_call
from tests.test_webhooks import SECRET, VERIFY


@pytest.fixture
def receiver() -> Iterator[ThreadReceiver]:
    with ThreadReceiver() as rx:
        yield rx


def setup_db(tmp_path: Path, url: str) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"database: {{path: {tmp_path / 'ctm.db'}}}\n"
        f"webhooks:\n  crm:\n    url: {url}\n    secret: {SECRET}\n"
        "    events: [call.started, call.completed]\n" + BASE
    )
    db = open_db(tmp_path / "ctm.db")
    migrate(db)
    outbox.attach(db, outbox.routing_for(load_config(cfg)))
    with db.conn:
        whole_call(db, "c1")
        whole_call(db, "c2")
        db.execute(
            "UPDATE outbox SET state = 'dead', attempts = 15, last_error = 'HTTP 500' WHERE id = 1"
        )
        db.execute("UPDATE outbox SET state = 'delivered', attempts = 1 WHERE id = 2")
    db.conn.close()
    return cfg


def run(cfg: Path, *args: str, code: int = 0):
    result = CliRunner().invoke(main, ["--config", str(cfg), "webhooks", *args])
    assert result.exit_code == code, result.output
    return result


def digest(path: Path) -> bytes:
    return path.read_bytes()


def test_list_and_show_say_what_waits_and_write_nothing(tmp_path: Path, receiver) -> None:
    cfg = setup_db(tmp_path, f"http://127.0.0.1:{receiver.port}/hook")
    before = digest(tmp_path / "ctm.db")
    (row,) = json.loads(run(cfg, "list", "--json").output)
    assert (row["destination"], row["pending"], row["dead"], row["delivered"]) == ("crm", 2, 1, 1)
    assert "crm" in run(cfg, "list").output
    dead = json.loads(run(cfg, "show", "crm", "--state", "dead", "--json").output)
    assert [(d["type"], d["attempts"], d["last_error"]) for d in dead] == [
        ("call.started", 15, "HTTP 500")
    ]
    assert "call.completed" in run(cfg, "show", "crm").output
    assert digest(tmp_path / "ctm.db") == before, "list and show only read"


def test_retry_queues_the_dead_again(tmp_path: Path, receiver) -> None:
    cfg = setup_db(tmp_path, f"http://127.0.0.1:{receiver.port}/hook")
    assert "3 events to send again" in run(cfg, "retry", "crm").output, "the waiting ones too"
    (row,) = json.loads(run(cfg, "list", "--json").output)
    assert (row["pending"], row["dead"]) == (3, 0)
    assert "no destination 'nope'" in run(cfg, "retry", "nope", code=1).output


def test_test_posts_one_signed_event_now(tmp_path: Path, receiver) -> None:
    cfg = setup_db(tmp_path, f"http://127.0.0.1:{receiver.port}/hook")
    before = digest(tmp_path / "ctm.db")
    out = run(cfg, "test", "crm").output
    assert "HTTP 200" in out
    ((headers, body),) = receiver.got
    assert VERIFY(SECRET, headers["X-CTM-Signature"], body)
    sent = json.loads(body)
    assert (sent["type"], sent["call"]["id"]) == ("test", 2), "the latest call as the sample"
    assert digest(tmp_path / "ctm.db") == before


def test_test_says_what_a_failing_receiver_answered(tmp_path: Path) -> None:
    with ThreadReceiver(status=503) as rx:
        cfg = setup_db(tmp_path, f"http://127.0.0.1:{rx.port}/hook")
        assert "crm: HTTP 503" in run(cfg, "test", "crm", code=1).output
