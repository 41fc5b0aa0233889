"""``ctm-pbx asterisk handover`` (the unit's ExecStopPost=) refuses while the config's
daemon answers on its web port: the calls in its Stasis app are its own."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from ctm_pbx.edges.cli import main
from tests.helpers import BASE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Live(BaseHTTPRequestHandler):
    def version_string(self) -> str:
        return "ctm-pbx"  # what the daemon's answers say

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200 if self.path == "/healthz/live" else 404)
        self.end_headers()

    def log_message(self, *args) -> None:  # noqa: ANN002 - quiet
        pass


@pytest.fixture
def daemon_port() -> Iterator[int]:
    """A loopback server answering as the daemon's web listener does."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Live)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def run(tmp_path: Path, web_port: int, *args: str):
    closed = free_port()  # ARI: nothing listens there
    conf = tmp_path / "config.yaml"
    conf.write_text(
        BASE
        + f"web: {{port: {web_port}}}\n"
        + f"asterisk: {{ari_url: 'http://127.0.0.1:{closed}'}}\n"
        + "database: {path: ctm.db}\n",
        encoding="utf-8",
    )
    return CliRunner().invoke(main, ["--config", str(conf), "asterisk", "handover", *args])


def test_it_refuses_while_the_daemon_answers(tmp_path: Path, daemon_port: int) -> None:
    result = run(tmp_path, daemon_port)
    assert result.exit_code == 1
    assert f"a ctm-pbx daemon answers on 127.0.0.1:{daemon_port}" in result.output
    assert "ARI" not in result.output, "Asterisk was not asked"
    assert "Traceback" not in result.output


@pytest.mark.parametrize("force", [True, False])
def test_it_goes_to_ari_when_no_daemon_answers_or_forced(
    tmp_path: Path, daemon_port: int, force: bool
) -> None:
    result = run(tmp_path, daemon_port, "--force") if force else run(tmp_path, free_port())
    assert result.exit_code == 1
    assert result.output.startswith("Error: ARI at http://127.0.0.1:"), result.output
    assert len(result.output.strip().splitlines()) == 1, "one line, no traceback"
