"""The shipped ``config.example.yaml`` loads and shows every feature."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctm_pbx.adapters.config_loader import load_config
from ctm_pbx.core.model import Config, FallbackKind, RouteOrder, RouteType, SourceKind

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("CTM_ARI_PASSWORD", "ctm-secret")
    return load_config(EXAMPLE)


def test_example_loads_with_password_from_env(example: Config) -> None:
    assert example.asterisk.password == "ctm-secret"
    assert example.path == str(EXAMPLE)
    assert example.database.path == str(EXAMPLE.parent / "ctm-pbx.db")
    assert example.database.max_release_percent == 25
    metrics = example.dashboard.metrics
    assert metrics.enabled and not metrics.authenticated, "loopback clients only"


def test_example_has_presets_custom_and_offsite_sources(example: Config) -> None:
    sources = example.sources
    assert sources["google-ads"].preset == "google_ads"
    assert sources["x-social"].preset == "twitter"
    assert sources["facebook"].label == "Facebook & Instagram"
    assert sources["spring-mailing"].preset is None
    assert len(sources["spring-mailing"].rules) == 4
    assert sources["spring-mailing"].last_touch
    assert sources["billboard-i90"].kind is SourceKind.OFFSITE


def test_example_routes_cover_all_types_and_fallbacks(example: Config) -> None:
    routes = example.routes
    assert {r.type for r in routes.values()} == set(RouteType)
    assert routes["sales-overflow"].order is RouteOrder.ROUND_ROBIN
    assert routes["sales-overflow"].targets[0].weight == 3
    assert routes["sales"].fallback.value == "sales-overflow"
    assert routes["sales-overflow"].fallback.value == "after-hours"
    assert {r.fallback.kind for r in routes.values()} == set(FallbackKind)
    assert routes["sales"].schedule == "office-hours"
    assert routes["by-region"].geo_rules[1].regions == ("IL", "WI", "IN")
    assert example.schedules["office-hours"].holidays[0].isoformat() == "2026-12-25"
    assert [o.key for o in routes["support-menu"].options] == ["1", "2", "*"]
    assert routes["by-zip"].ask_zip.prompts == ("ctm-pbx/enter-zip",)


def test_example_numbers_and_pools(example: Config) -> None:
    assert example.targets["sales"].number == "+13125550100"
    assert example.receiving_numbers["desk-2"].dial_string == "PJSIP/13125550102@carrier"
    assert example.receiving_numbers["phone1"].dial_string == "PJSIP/phone1"
    pooled = [t for t in example.tracking_numbers if t.pool == "google-ads-sales"]
    assert len(pooled) == 3
    assert all(t.source == "google-ads" for t in pooled)
    assert example.pools["google-ads-sales"].target == "sales"
    assert all(t.route for t in example.tracking_numbers)


def test_example_retention(example: Config) -> None:
    r = example.retention
    assert (str(r.visitor_details), str(r.visits)) == ("30d", "13mo")
    assert r.calls is None and r.recordings is None and r.voicemail is None
    assert r.purge


def test_example_has_webhooks_outbox_ga4_and_google_ads(example: Config) -> None:
    crm = example.webhooks["crm"]
    assert crm.url.startswith("https://") and len(crm.secret) >= 16
    assert crm.events == ("call.completed", "call.qualified", "call.tagged")
    assert dict(crm.headers) == {"X-Api-Key": "example-key"}
    assert example.outbox.max_attempts == 15 and example.outbox.backoff_max_seconds == 3600
    assert example.ga4 is not None and example.ga4.events == ("call.qualified",)
    ads = example.google_ads
    assert ads is not None and (ads.conversion_name, ads.value, ads.currency) == (
        "Phone call",
        50.0,
        "USD",
    )
    assert ads.feed_token and ads.feed_password
    assert ads.values.by_tag == (("sale", 400.0),)
    assert ads.values.by_source == (("google-ads", 60.0),)


def test_running_the_example_sends_no_call_out_of_the_building(example: Config) -> None:
    """scripts/run-example runs this file: every outside destination it names is a host
    that never resolves (.invalid, RFC 6761), so no call leaves the machine."""
    from urllib.parse import urlsplit

    urls = [hook.url for hook in example.webhooks.values()]
    if example.ga4 is not None:
        urls.append(example.ga4.endpoint)
    assert urls
    for url in urls:
        assert (urlsplit(url).hostname or "").endswith(".invalid"), url
