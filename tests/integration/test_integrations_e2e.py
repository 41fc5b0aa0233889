"""End to end: a browser visit from a Google Ads click, a real call through Asterisk to
the number it saw, and what leaves the building: one signed webhook, one GA4
Measurement Protocol event and one row of the Google Ads click-conversion CSV.

The browser has Google Analytics' cookies (``_ga``, ``_ga_<stream>``): the swap script
reads them and sends the client and session ids with the visit, as on a real site.
"""

from __future__ import annotations

import csv
import io
import json
import time

import pytest
from click.testing import CliRunner

from ctm_pbx.edges.cli import main
from tests.outbox_helpers import ThreadReceiver
from tests.test_ga4 import mp_problems
from tests.test_webhooks import SECRET, VERIFY

from .ctm import AGI_DIDS, ThreadDaemon, write_config
from .sip import Carrier
from .test_e2e_attribution import (  # noqa: F401 - the fixture
    agi_only_pool,
    chromium,
    visit_from_google_ads,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser]

INTEGRATIONS = """
reports: {{qualified_min_talk_seconds: 0}}
webhooks:
  crm:
    url: http://127.0.0.1:{hook}/hook
    secret: {secret}
    events: [call.qualified]
ga4:
  measurement_id: G-TEST123
  api_secret: mp-secret
  endpoint: http://127.0.0.1:{ga4}/mp/collect
google_ads:
  conversion_name: Phone call
  value: 40
"""


GA_COOKIES = {"_ga": "GA1.1.4242.1733000000", "_ga_TEST123": "GS2.1.s1733000100$o1$g0"}


def wait_for(check, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("mode", ["ari", "agi"])
def test_a_google_click_call_leaves_as_webhook_ga4_event_and_ads_row(
    asterisk,
    tmp_path,
    chromium,  # noqa: F811
    phone_factory,
    mode,
) -> None:
    """In ARI mode (the pool's ARI number) and in AGI mode (the pool's AGI number only)."""
    number = "+13125550150" if mode == "ari" else "+" + AGI_DIDS["gads"]
    with ThreadReceiver() as hook, ThreadReceiver(status=204, path="/mp/collect") as ga4:
        config = write_config(tmp_path)
        if mode == "agi":
            agi_only_pool(config)
        config.write_text(
            config.read_text()
            + INTEGRATIONS.format(hook=hook.port, ga4=ga4.port, secret=SECRET)
        )
        daemon = ThreadDaemon(config, asterisk).start()
        try:
            href, _ = visit_from_google_ads(chromium, GA_COOKIES)
            assert href == f"tel:{number}"
            phone_factory("phone1", "answer", ring_ms=100)
            call = Carrier(tmp_path / "carrier").place_call(href[len("tel:+") :], hold_ms=300)
            assert call.success, call.describe()
            row = daemon.call(tracking_number=number)
            wait_for(lambda: hook.got and ga4.got)
            time.sleep(1.0)  # nothing more arrives
        finally:
            daemon.stop()
    assert row["click_ids"] == {"gclid": "E2E-CLICK-42"} and row["outcome"] == "answered"
    assert row["mode"] == mode
    ((headers, body),) = hook.got
    assert VERIFY(SECRET, headers["X-CTM-Signature"], body)
    sent = json.loads(body)
    assert (sent["type"], sent["call"]["id"]) == ("call.qualified", row["id"])
    assert sent["call"]["click_ids"] == {"gclid": "E2E-CLICK-42"}
    ((headers, body),) = ga4.got
    payload = json.loads(body)
    assert mp_problems(headers["query"], payload, time.time()) == []
    assert payload["client_id"] == "4242.1733000000"
    assert payload["events"][0]["params"]["session_id"] == "1733000100"
    assert payload["events"][0]["params"]["call_id"] == str(row["id"])
    out = CliRunner().invoke(main, ["--config", str(config), "ads", "export", "--csv"])
    assert out.exit_code == 0, out.output
    rows = list(csv.reader(io.StringIO(out.output)))[2:]
    assert [(r[0], r[3], r[5]) for r in rows] == [("E2E-CLICK-42", "Phone call", "40.00")]
