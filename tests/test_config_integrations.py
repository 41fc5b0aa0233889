"""The integrations' config (webhooks, outbox, ga4, google_ads): every key checked, every
problem said with its path and line."""

from __future__ import annotations

import pytest

from ctm_pbx.adapters.config_loader import ConfigError, parse_config


def problems(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    return str(info.value)


def test_a_webhook_needs_a_url_and_a_long_secret() -> None:
    out = problems("webhooks:\n  crm:\n    events: [call.completed]\n")
    assert "2: webhooks.crm: missing required field 'url'" in out
    assert "missing required field 'secret'" in out
    out = problems("webhooks:\n  crm:\n    url: https://x.example/h\n    secret: short\n")
    assert "4: webhooks.crm.secret: the secret must be at least 16 characters" in out


def test_unknown_events_keys_and_headers_are_named() -> None:
    base = "webhooks:\n  crm:\n    url: ftp://x.example/h\n    secret: 0123456789abcdefgh\n"
    out = problems(base + "    events: [call.complete]\n    retries: 3\n"
                   "    headers: {X-Ok: a, Content-Type: b, 'bad header': c}\n")  # fmt: skip
    assert "3: webhooks.crm.url: expected an https URL" in out
    assert "5: webhooks.crm.events: unknown event 'call.complete'" in out
    assert "did you mean 'call.completed'" in out
    assert "6: webhooks.crm.retries: unknown key 'retries'" in out
    assert "'Content-Type' cannot be a custom header" in out
    assert "'bad header' cannot be a custom header" in out


def test_ga4_is_not_a_webhook_name_and_its_ids_are_checked() -> None:
    out = problems(
        "webhooks:\n  ga4: {url: 'https://x.example', secret: 0123456789abcdef}\n"
        "ga4:\n  measurement_id: UA-1\n  api_secret: s\n  event_name: 9bad\n"
    )
    assert "2: webhooks.ga4: invalid webhook name 'ga4'" in out
    assert "4: ga4.measurement_id: expected a GA4 measurement id" in out
    assert "6: ga4.event_name: a GA4 event name" in out


def test_outbox_backoff_must_make_sense() -> None:
    out = problems("outbox:\n  backoff_first_seconds: 60\n  backoff_max_seconds: 10\n")
    assert "3: outbox.backoff_max_seconds: backoff_max_seconds must be at least" in out
    out = problems("outbox:\n  max_attempts: 0\n")
    assert "2: outbox.max_attempts: must be between 1 and 1000, got 0" in out


def test_a_good_section_loads() -> None:
    cfg = parse_config(
        "webhooks:\n  crm:\n    url: https://crm.example/h/\n    secret: 0123456789abcdef\n"
        "    events: call.qualified\n    headers: {X-Key: k}\n"
        "outbox: {max_attempts: 3}\n"
        "ga4: {measurement_id: G-ABC123, api_secret: s, value: 12.5}\n",
        env={},
    )
    hook = cfg.webhooks["crm"]
    assert (hook.url, hook.events, hook.headers) == (
        "https://crm.example/h/", ("call.qualified",), (("X-Key", "k"),)
    )
    assert cfg.outbox.max_attempts == 3 and cfg.ga4 is not None and cfg.ga4.value == 12.5
