"""Shared builders for unit tests: small configs written as YAML."""

from __future__ import annotations

from ctm_pbx.adapters.config_loader import parse_config
from ctm_pbx.core.model import Config

# what a visitor's browser sends (tools such as aiohttp's client are crawlers to the API)
BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/131.0.0.0 Safari/537.36"
)

BASE = """\
sources:
  billboard: {kind: offsite}
  google-ads: {preset: google_ads}
receiving_numbers:
  desk-1: {number: "+13125550101", dial: "PJSIP/phone1"}
  desk-2: {number: "+13125550102", dial: "PJSIP/phone2"}
  desk-3: {number: "+13125550103", dial: "PJSIP/phone3"}
  mobile: {number: "+13125550109"}
routes:
  one: {type: single, targets: [desk-1], ring_timeout: 10}
  all: {type: simultaneous, targets: [desk-1, desk-2, desk-3], ring_timeout: 15}
  seq: {type: sequential, targets: [desk-1, desk-2], ring_timeout: 5, fallback: busy}
  rr: {type: sequential, order: round_robin, targets: [desk-1, desk-2, desk-3]}
  wrr:
    type: sequential
    order: round_robin
    targets: [{receiving_number: desk-1, weight: 3}, desk-2]
  to-route: {type: single, targets: [desk-1], fallback: {route: seq}}
  to-number: {type: single, targets: [desk-2], fallback: {number: "+13125550199"}}
  to-mobile: {type: single, targets: [desk-2], fallback: {receiving_number: mobile}}
"""


def config(extra: str = "") -> Config:
    return parse_config(BASE + extra, env={})


def one_pool_config(numbers: tuple[str, ...], shop: str = "https://shop.example.com") -> str:
    """A config of one Google Ads pool of ``numbers`` (its page on ``shop``), as YAML."""
    return (
        f'web: {{allowed_origins: ["{shop}"]}}\n'
        "sources:\n  google-ads: {preset: google_ads}\n"
        'targets:\n  sales: "+13125550100"\n'
        "pools:\n  gads: {source: google-ads}\n"
        'receiving_numbers:\n  desk: {number: "+13125550101", dial: "PJSIP/phone1"}\n'
        "routes:\n  main: {type: single, targets: [desk]}\n"
        "tracking_numbers:\n"
        + "".join(f'  - {{number: "{n}", pool: gads, route: main}}\n' for n in numbers)
    )
