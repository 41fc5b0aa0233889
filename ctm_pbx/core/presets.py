"""Built-in tracking-source presets: common traffic sources as match rules.

Pure data. A source in ``config.yaml`` names a preset (``preset: google_ads``)
and gets its kind, priority, label and rules; any of them may be overridden.
Matching itself lives elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctm_pbx.core.model import MatchRule, SourceKind

PRIORITY_ADS = 10
PRIORITY_SOCIAL = 20
PRIORITY_EMAIL = 30
PRIORITY_ORGANIC = 40
PRIORITY_REFERRAL = 90
PRIORITY_DIRECT = 100

PAID_MEDIUMS = ("cpc", "ppc", "paid", "paidsearch")


@dataclass(frozen=True)
class Preset:
    """A named, ready-made tracking source."""

    name: str
    label: str
    priority: int
    rules: tuple[MatchRule, ...]
    kind: SourceKind = SourceKind.ONSITE


def _utm(source: str | None = None, medium: str | None = None) -> MatchRule:
    """A rule on ``utm_source`` and/or ``utm_medium`` landing parameters."""
    params: list[tuple[str, str]] = []
    if source is not None:
        params.append(("utm_source", source))
    if medium is not None:
        params.append(("utm_medium", medium))
    return MatchRule(landing_params=tuple(params))


def _utm_sources(*sources: str) -> tuple[MatchRule, ...]:
    return tuple(_utm(source=s) for s in sources)


def _utm_paid(source: str, mediums: tuple[str, ...] = PAID_MEDIUMS) -> tuple[MatchRule, ...]:
    return tuple(_utm(source=source, medium=m) for m in mediums)


def _hosts(*hosts: str) -> MatchRule:
    return MatchRule(referrer_hosts=hosts)


_PRESET_LIST: tuple[Preset, ...] = (
    Preset(
        name="google_ads",
        label="Google Ads",
        priority=PRIORITY_ADS,
        rules=(MatchRule(click_ids=("gclid", "gbraid", "wbraid", "dclid")), *_utm_paid("google")),
    ),
    Preset(
        name="google_organic",
        label="Google (organic)",
        priority=PRIORITY_ORGANIC,
        # Google Search itself (www.google.com, google.co.uk, google.com.au…), not Gmail,
        # Docs or lookalike hosts such as google.example.io
        rules=(
            MatchRule(
                referrer_regex=r"^https?://(www\.)?google\.(com|co\.[a-z]{2}|com\.[a-z]{2}|[a-z]{2})/"
            ),
        ),
    ),
    Preset(
        name="bing_ads",
        label="Microsoft Ads (Bing)",
        priority=PRIORITY_ADS,
        rules=(MatchRule(click_ids=("msclkid",)), *_utm_paid("bing", ("cpc",))),
    ),
    Preset(
        name="bing_organic",
        label="Bing (organic)",
        priority=PRIORITY_ORGANIC,
        rules=(_hosts("bing.com"),),
    ),
    Preset(
        name="yahoo",
        label="Yahoo",
        priority=PRIORITY_ORGANIC,
        rules=(_hosts("search.yahoo.com", "yahoo.com"),),
    ),
    Preset(
        name="facebook",
        label="Facebook",
        priority=PRIORITY_SOCIAL,
        rules=(
            MatchRule(click_ids=("fbclid",)),
            *_utm_sources("facebook", "fb"),
            _hosts("facebook.com", "m.facebook.com", "l.facebook.com", "lm.facebook.com"),
        ),
    ),
    Preset(
        name="twitter",
        label="X (Twitter)",
        priority=PRIORITY_SOCIAL,
        rules=(
            MatchRule(click_ids=("twclid",)),
            *_utm_sources("twitter", "x"),
            _hosts("t.co", "twitter.com", "x.com"),
        ),
    ),
    Preset(
        name="email",
        label="Email",
        priority=PRIORITY_EMAIL,
        rules=tuple(_utm(medium=m) for m in ("email", "e-mail", "newsletter")),
    ),
    Preset(
        name="referral",
        label="Referral",
        priority=PRIORITY_REFERRAL,
        rules=(MatchRule(external_referrer=True),),
    ),
    Preset(
        name="direct",
        label="Direct",
        priority=PRIORITY_DIRECT,
        rules=(MatchRule(no_referrer=True),),
    ),
)

PRESETS: dict[str, Preset] = {p.name: p for p in _PRESET_LIST}

PRESET_ALIASES: dict[str, str] = {"twitter_x": "twitter", "x": "twitter"}


def preset_names() -> list[str]:
    """Every name ``preset:`` accepts, canonical names first."""
    return [*PRESETS, *PRESET_ALIASES]


def get_preset(name: str) -> Preset | None:
    """The preset called ``name`` (or an alias of it), else None."""
    return PRESETS.get(PRESET_ALIASES.get(name, name))
