"""Source matching, precedence and first/last-touch attribution (pure core)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ctm_pbx.adapters.config_loader import parse_config
from ctm_pbx.core import sources as core_sources
from ctm_pbx.core.model import MatchRule, Source, SourceKind
from ctm_pbx.core.source_index import SourceIndex
from ctm_pbx.core.sources import (
    CLICK_ID_PARAMS,
    NO_MATCH,
    PHASE_DIRECT,
    PHASE_LANDING,
    PHASE_NONE,
    PHASE_REFERRER,
    SourceDecision,
    SourceMatch,
    Touch,
    attribute_visitor,
    is_direct_like,
    match_rule,
    parse_visit,
    rank_sources,
    resolve_source,
    rule_phase,
    why_outranked,
)

SITE = "https://www.acme-plumbing.com"

PRESET_YAML = """\
sources:
  google-ads: {preset: google_ads, last_touch: true}
  google-organic: {preset: google_organic}
  bing-ads: {preset: bing_ads, last_touch: true}
  bing-organic: {preset: bing_organic}
  yahoo: {preset: yahoo}
  facebook: {preset: facebook}
  x: {preset: x}
  email: {preset: email}
  referral: {preset: referral}
  direct: {preset: direct}
  billboard: {kind: offsite}
"""

CUSTOM_YAML = r"""
  partner-google:          # same phase as google-ads (landing), better priority
    kind: onsite
    priority: 5
    match:
      - landing_params: {utm_source: google, utm_campaign: partner}
  coupon:                  # landing phase at a worse priority than any referrer source
    kind: onsite
    priority: 95
    match:
      - landing_params: {coupon: "*"}
  yelp:
    kind: onsite
    priority: 60
    match:
      - referrer_hosts: [yelp.com, yelp.co.uk]
  press:
    kind: onsite
    priority: 70
    match:
      - referrer_regex: '^https://news\.example\.org/20[0-9]{2}/'
  spring:
    kind: onsite
    priority: 25
    last_touch: true
    match:
      - referrer_hosts: [mail.example.com]
        landing_regex: '/spring(/|$)'
      - click_ids: mlid
  tie-b: {kind: onsite, priority: 50, match: {landing_params: {ref: tie}}}
  tie-a: {kind: onsite, priority: 50, match: {landing_params: {ref: tie}}}
"""

PRESET_SOURCES = parse_config(PRESET_YAML, env={}).sources
CUSTOM_SOURCES = parse_config(PRESET_YAML + CUSTOM_YAML, env={}).sources
# the index (what the visit API uses) must answer every case the linear scan answers
PRESET_INDEX = SourceIndex(PRESET_SOURCES)
CUSTOM_INDEX = SourceIndex(CUSTOM_SOURCES)

GOOGLE_TLD_REGEX = (
    r"referrer matches '^https?://(www\.)?google\.(com|co\.[a-z]{2}|com\.[a-z]{2}|[a-z]{2})/'"
)

# (id, landing URL, referrer, source, rule, phase)
PRESET_CASES = [
    # Google Ads
    (
        "gads gclid from google",
        f"{SITE}/?gclid=Cj0KCQjw-_mvBhDwARIsAA",
        "https://www.google.com/",
        "google-ads",
        "click id gclid",
        PHASE_LANDING,
    ),
    (
        "gads gbraid no referrer",
        f"{SITE}/emergency?gbraid=0AAAAADp1",
        None,
        "google-ads",
        "click id gbraid",
        PHASE_LANDING,
    ),
    (
        "gads wbraid",
        f"{SITE}/?wbraid=CkEKCQjw",
        "https://www.google.com/",
        "google-ads",
        "click id wbraid",
        PHASE_LANDING,
    ),
    (
        "gads dclid",
        f"{SITE}/?dclid=CKmg",
        "https://ad.doubleclick.net/",
        "google-ads",
        "click id dclid",
        PHASE_LANDING,
    ),
    (
        "gads upper-case click id name",
        f"{SITE}/?GCLID=abc",
        None,
        "google-ads",
        "click id gclid",
        PHASE_LANDING,
    ),
    (
        "gads utm cpc",
        f"{SITE}/drains?utm_source=google&utm_medium=cpc&utm_campaign=brand",
        "https://www.google.com/",
        "google-ads",
        "utm_source=google, utm_medium=cpc",
        PHASE_LANDING,
    ),
    (
        "gads utm values any case",
        f"{SITE}/?utm_source=Google&utm_medium=PPC",
        None,
        "google-ads",
        "utm_source=google, utm_medium=ppc",
        PHASE_LANDING,
    ),
    (
        "gads gclid with same-site referrer",
        f"{SITE}/contact?gclid=abc",
        f"{SITE}/services",
        "google-ads",
        "click id gclid",
        PHASE_LANDING,
    ),
    # Google organic
    (
        "google organic www.google.com",
        f"{SITE}/",
        "https://www.google.com/",
        "google-organic",
        GOOGLE_TLD_REGEX,
        PHASE_REFERRER,
    ),
    (
        "google organic without trailing slash",
        f"{SITE}/",
        "https://www.google.com",
        "google-organic",
        GOOGLE_TLD_REGEX,
        PHASE_REFERRER,
    ),
    (
        "google organic google.co.uk",
        f"{SITE}/",
        "https://www.google.co.uk/",
        "google-organic",
        GOOGLE_TLD_REGEX,
        PHASE_REFERRER,
    ),
    (
        "google organic google.de",
        f"{SITE}/heizung",
        "https://www.google.de/",
        "google-organic",
        GOOGLE_TLD_REGEX,
        PHASE_REFERRER,
    ),
    (
        "google organic with organic utm tags",
        f"{SITE}/?utm_source=google&utm_medium=organic",
        "https://www.google.com/",
        "google-organic",
        GOOGLE_TLD_REGEX,
        PHASE_REFERRER,
    ),
    # Bing
    (
        "bing ads msclkid",
        f"{SITE}/?msclkid=3f9e2b",
        "https://www.bing.com/",
        "bing-ads",
        "click id msclkid",
        PHASE_LANDING,
    ),
    (
        "bing ads utm cpc",
        f"{SITE}/?utm_source=bing&utm_medium=cpc",
        "https://www.bing.com/",
        "bing-ads",
        "utm_source=bing, utm_medium=cpc",
        PHASE_LANDING,
    ),
    (
        "bing ads scheme-less landing",
        "www.acme-plumbing.com/?msclkid=1",
        None,
        "bing-ads",
        "click id msclkid",
        PHASE_LANDING,
    ),
    (
        "bing organic",
        f"{SITE}/",
        "https://www.bing.com/",
        "bing-organic",
        "referrer host bing.com",
        PHASE_REFERRER,
    ),
    (
        "bing organic full search URL",
        f"{SITE}/",
        "http://www.bing.com/search?q=plumber+chicago",
        "bing-organic",
        "referrer host bing.com",
        PHASE_REFERRER,
    ),
    # Yahoo
    (
        "yahoo search",
        f"{SITE}/",
        "https://search.yahoo.com/",
        "yahoo",
        "referrer host search.yahoo.com",
        PHASE_REFERRER,
    ),
    (
        "yahoo regional search",
        f"{SITE}/",
        "https://uk.search.yahoo.com/",
        "yahoo",
        "referrer host search.yahoo.com",
        PHASE_REFERRER,
    ),
    # Facebook
    (
        "facebook fbclid",
        f"{SITE}/?fbclid=IwAR2xQ",
        "https://l.facebook.com/",
        "facebook",
        "click id fbclid",
        PHASE_LANDING,
    ),
    (
        "facebook utm_source",
        f"{SITE}/?utm_source=facebook&utm_medium=social",
        None,
        "facebook",
        "utm_source=facebook",
        PHASE_LANDING,
    ),
    (
        "facebook l.facebook.com referrer",
        f"{SITE}/",
        "https://l.facebook.com/",
        "facebook",
        "referrer host facebook.com",
        PHASE_REFERRER,
    ),
    (
        "facebook mobile referrer",
        f"{SITE}/",
        "https://m.facebook.com/groups/chicago",
        "facebook",
        "referrer host facebook.com",
        PHASE_REFERRER,
    ),
    # X (Twitter)
    (
        "x t.co",
        f"{SITE}/",
        "https://t.co/AbC123",
        "x",
        "referrer host t.co",
        PHASE_REFERRER,
    ),
    (
        "x twclid",
        f"{SITE}/?twclid=2-7f",
        None,
        "x",
        "click id twclid",
        PHASE_LANDING,
    ),
    (
        "x utm_source=x",
        f"{SITE}/?utm_source=x",
        "https://t.co/AbC123",
        "x",
        "utm_source=x",
        PHASE_LANDING,
    ),
    (
        "x x.com referrer",
        f"{SITE}/",
        "https://x.com/acme/status/1",
        "x",
        "referrer host x.com",
        PHASE_REFERRER,
    ),
    # Email
    (
        "email utm_medium",
        f"{SITE}/?utm_source=newsletter&utm_medium=email&utm_campaign=march",
        None,
        "email",
        "utm_medium=email",
        PHASE_LANDING,
    ),
    (
        "email from gmail beats google organic",
        f"{SITE}/?utm_medium=newsletter",
        "https://mail.google.com/",
        "email",
        "utm_medium=newsletter",
        PHASE_LANDING,
    ),
    (
        "facebook outranks email by priority",
        f"{SITE}/?utm_source=facebook&utm_medium=email",
        None,
        "facebook",
        "utm_source=facebook",
        PHASE_LANDING,
    ),
    # Referral
    (
        "referral yelp",
        f"{SITE}/",
        "https://www.yelp.com/biz/acme-plumbing-chicago",
        "referral",
        "external referrer www.yelp.com",
        PHASE_REFERRER,
    ),
    (
        "gmail is not google search",
        f"{SITE}/",
        "https://mail.google.com/mail/u/0/",
        "referral",
        "external referrer mail.google.com",
        PHASE_REFERRER,
    ),
    (
        "a lookalike host is not google search",
        f"{SITE}/",
        "https://google.example.io/",
        "referral",
        "external referrer google.example.io",
        PHASE_REFERRER,
    ),
    (
        "referral duckduckgo",
        f"{SITE}/",
        "https://duckduckgo.com/",
        "referral",
        "external referrer duckduckgo.com",
        PHASE_REFERRER,
    ),
    (
        "referral from own subdomain",
        f"{SITE}/",
        "https://blog.acme-plumbing.com/post",
        "referral",
        "external referrer blog.acme-plumbing.com",
        PHASE_REFERRER,
    ),
    (
        "referral from an app",
        f"{SITE}/",
        "android-app://com.slack/",
        "referral",
        "external referrer com.slack",
        PHASE_REFERRER,
    ),
    # Direct
    ("direct no referrer", f"{SITE}/", None, "direct", "no referrer", PHASE_DIRECT),
    ("direct empty referrer", f"{SITE}/", "", "direct", "no referrer", PHASE_DIRECT),
    (
        "same-site referrer is direct",
        f"{SITE}/pricing",
        "https://acme-plumbing.com/services",
        "direct",
        "same-site referrer",
        PHASE_DIRECT,
    ),
    (
        "same-site referrer with www is direct",
        "https://acme-plumbing.com/pricing",
        f"{SITE}/",
        "direct",
        "same-site referrer",
        PHASE_DIRECT,
    ),
    ("blank click id is direct", f"{SITE}/?gclid=", None, "direct", "no referrer", PHASE_DIRECT),
    (
        "unknown campaign without referrer is direct",
        f"{SITE}/?utm_source=flyer&utm_medium=print",
        None,
        "direct",
        "no referrer",
        PHASE_DIRECT,
    ),
]


@pytest.mark.parametrize(
    ("landing", "referrer", "source", "rule", "phase"),
    [case[1:] for case in PRESET_CASES],
    ids=[case[0] for case in PRESET_CASES],
)
def test_presets(landing, referrer, source, rule, phase) -> None:
    facts = parse_visit(landing, referrer)
    decision = resolve_source(PRESET_SOURCES, facts)
    assert decision == SourceDecision(source, rule, phase)
    assert PRESET_INDEX.resolve(facts) == decision
    assert PRESET_INDEX.rank(facts) == rank_sources(PRESET_SOURCES, facts)


# (id, landing URL, referrer, source, rule, phase)
CUSTOM_CASES = [
    (
        "custom outranks preset within landing phase",
        f"{SITE}/?utm_source=google&utm_medium=cpc&utm_campaign=partner",
        "https://www.google.com/",
        "partner-google",
        "utm_source=google, utm_campaign=partner",
        PHASE_LANDING,
    ),
    (
        "preset wins when the custom rule does not match",
        f"{SITE}/?utm_source=google&utm_medium=cpc&utm_campaign=brand",
        "https://www.google.com/",
        "google-ads",
        "utm_source=google, utm_medium=cpc",
        PHASE_LANDING,
    ),
    (
        "landing phase beats referrer phase at a worse priority",
        f"{SITE}/?coupon=SPRING10",
        "https://www.google.com/",
        "coupon",
        "coupon present",
        PHASE_LANDING,
    ),
    (
        "star matches a blank value",
        f"{SITE}/?coupon=",
        None,
        "coupon",
        "coupon present",
        PHASE_LANDING,
    ),
    (
        "priority decides between two landing matches",
        f"{SITE}/?coupon=X&gclid=abc",
        None,
        "google-ads",
        "click id gclid",
        PHASE_LANDING,
    ),
    (
        "custom referrer host outranks referral",
        f"{SITE}/",
        "https://www.yelp.co.uk/biz/acme",
        "yelp",
        "referrer host yelp.co.uk",
        PHASE_REFERRER,
    ),
    (
        "host lookalike is not a subdomain",
        f"{SITE}/",
        "https://notyelp.com/",
        "referral",
        "external referrer notyelp.com",
        PHASE_REFERRER,
    ),
    (
        "referrer regex",
        f"{SITE}/",
        "https://news.example.org/2024/05/acme-expands",
        "press",
        r"referrer matches '^https://news\.example\.org/20[0-9]{2}/'",
        PHASE_REFERRER,
    ),
    (
        "referrer regex miss",
        f"{SITE}/",
        "https://news.example.org/about",
        "referral",
        "external referrer news.example.org",
        PHASE_REFERRER,
    ),
    (
        "mixed rule counts as landing phase",
        f"{SITE}/spring/offer",
        "https://webmail.mail.example.com/",
        "spring",
        "landing URL matches '/spring(/|$)', referrer host mail.example.com",
        PHASE_LANDING,
    ),
    (
        "mixed rule needs both conditions",
        f"{SITE}/spring",
        None,
        "direct",
        "no referrer",
        PHASE_DIRECT,
    ),
    (
        "landing regex miss",
        f"{SITE}/springfield",
        "https://mail.example.com/",
        "referral",
        "external referrer mail.example.com",
        PHASE_REFERRER,
    ),
    (
        "custom click id, any case",
        f"{SITE}/?MLID=42",
        None,
        "spring",
        "click id mlid",
        PHASE_LANDING,
    ),
    (
        "same phase and priority: name decides",
        f"{SITE}/?ref=TIE",
        None,
        "tie-a",
        "ref=tie",
        PHASE_LANDING,
    ),
]


@pytest.mark.parametrize(
    ("landing", "referrer", "source", "rule", "phase"),
    [case[1:] for case in CUSTOM_CASES],
    ids=[case[0] for case in CUSTOM_CASES],
)
def test_custom_rules(landing, referrer, source, rule, phase) -> None:
    facts = parse_visit(landing, referrer)
    decision = resolve_source(CUSTOM_SOURCES, facts)
    assert decision == SourceDecision(source, rule, phase)
    assert CUSTOM_INDEX.resolve(facts) == decision
    assert CUSTOM_INDEX.rank(facts) == rank_sources(CUSTOM_SOURCES, facts)


def test_rank_lists_every_match_winner_first() -> None:
    facts = parse_visit(f"{SITE}/?gclid=abc&coupon=1", "https://www.google.com/")
    ranked = rank_sources(CUSTOM_SOURCES, facts)
    assert [(m.source, m.phase, m.priority) for m in ranked] == [
        ("google-ads", PHASE_LANDING, 10),
        ("coupon", PHASE_LANDING, 95),
        ("google-organic", PHASE_REFERRER, 40),
        ("referral", PHASE_REFERRER, 90),
    ]
    assert why_outranked(ranked[0], ranked[1]) == "priority 95 is after 10"
    assert why_outranked(ranked[0], ranked[2]) == "referrer phase comes after landing phase"
    tie = rank_sources(CUSTOM_SOURCES, parse_visit(f"{SITE}/?ref=tie"))
    assert "'tie-a' sorts first" in why_outranked(tie[0], tie[1])
    assert CUSTOM_INDEX.rank(facts) == ranked
    assert CUSTOM_INDEX.rank(parse_visit(f"{SITE}/?ref=tie")) == tie


def test_a_source_matches_at_its_earliest_phase() -> None:
    facts = parse_visit(f"{SITE}/?fbclid=IwAR", "https://l.facebook.com/")
    [facebook] = [m for m in rank_sources(PRESET_SOURCES, facts) if m.source == "facebook"]
    assert facebook == SourceMatch("facebook", "click id fbclid", PHASE_LANDING, 20)


def test_offsite_sources_never_match() -> None:
    radio = Source("radio", SourceKind.OFFSITE, 1, rules=(MatchRule(no_referrer=True),))
    assert resolve_source({"radio": radio}, parse_visit(f"{SITE}/")) == NO_MATCH
    assert resolve_source(PRESET_SOURCES, parse_visit(f"{SITE}/")).source == "direct"
    assert SourceIndex({"radio": radio}).resolve(parse_visit(f"{SITE}/")) == NO_MATCH
    assert len(SourceIndex({"radio": radio})) == 0


def test_nothing_matches() -> None:
    sources = {k: v for k, v in PRESET_SOURCES.items() if k != "direct"}
    decision = resolve_source(sources, parse_visit(f"{SITE}/"))
    assert decision == NO_MATCH
    assert decision.source is None and decision.phase == PHASE_NONE
    assert resolve_source({}, parse_visit(f"{SITE}/?gclid=1")) == NO_MATCH
    assert SourceIndex(sources).resolve(parse_visit(f"{SITE}/")) == NO_MATCH
    assert SourceIndex({}).rank(parse_visit(f"{SITE}/?gclid=1")) == ()


# ---- garbage ---------------------------------------------------------------------

GARBAGE = [
    "",
    "   ",
    "not a url",
    "http://",
    "https://",
    "http://[::1",
    "https://exa mple.com/",
    "javascript:alert(1)",
    "mailto:owner@acme-plumbing.com",
    "about:blank",
    "::::",
    "\x00\x01\x02",
    "http://%zz%/",
    "https://" + "a" * 5000,
    "https://" + "a" * 64 + ".com/",
    "localhost",
]


def _short(value: object) -> str:
    return repr(value)[:30]


@pytest.mark.parametrize("garbage", [*GARBAGE, None], ids=_short)
def test_garbage_referrer_is_no_referrer(garbage) -> None:
    facts = parse_visit(f"{SITE}/?gclid=abc", garbage)
    assert facts.referrer is None and facts.referrer_host is None
    assert not facts.external_referrer
    assert facts.click_ids == ("gclid",)
    assert resolve_source(PRESET_SOURCES, parse_visit(f"{SITE}/", garbage)).source == "direct"


@pytest.mark.parametrize("garbage", [*GARBAGE, None, 42], ids=_short)
def test_garbage_landing_is_absent(garbage) -> None:
    facts = parse_visit(garbage, "https://www.google.de/")
    assert facts.landing_host is None and facts.params == ()
    decision = resolve_source(CUSTOM_SOURCES, facts)
    assert decision.source == "google-organic", "the referrer still counts"


def test_a_bare_path_referrer_is_absent_but_a_path_landing_is_read() -> None:
    facts = parse_visit("/pricing?gclid=abc", "/services")
    assert facts.referrer is None
    assert facts.landing_host is None and facts.landing_path == "/pricing"
    assert resolve_source(PRESET_SOURCES, facts).source == "google-ads"


# ---- parse_visit -----------------------------------------------------------------


def test_parse_visit_reads_the_facts() -> None:
    facts = parse_visit(
        "HTTPS://WWW.Acme-Plumbing.com/Drains?UTM_SOURCE=News&utm_source=other&Gclid=1"
        "&fbclid=&utm_medium=email&utm_campaign=spring&utm_term=drain&utm_content=top#x",
        "https://Acme-Plumbing.COM./blog",
    )
    assert facts.landing_host == "www.acme-plumbing.com"
    assert facts.landing_path == "/Drains"
    assert facts.landing_url.startswith("https://www.acme-plumbing.com/Drains?")
    assert facts.param("utm_source") == "News", "first value wins"
    assert facts.param("GCLID") == "1" and facts.param("missing") is None
    assert facts.click_ids == ("gclid",), "a blank fbclid is no click id"
    assert (facts.utm_source, facts.utm_medium, facts.utm_campaign) == ("News", "email", "spring")
    assert (facts.utm_term, facts.utm_content) == ("drain", "top")
    assert facts.referrer == "https://acme-plumbing.com./blog"
    assert facts.referrer_host == "acme-plumbing.com"
    assert not facts.external_referrer, "www. and a trailing dot are ignored"
    assert facts.has_campaign


def test_parse_visit_external_and_no_campaign() -> None:
    facts = parse_visit(f"{SITE}/", "https://www.google.com/search?q=plumber")
    assert facts.external_referrer and facts.referrer_host == "www.google.com"
    assert not facts.has_campaign and facts.click_ids == ()


def test_click_id_params() -> None:
    for name in ("gclid", "gbraid", "wbraid", "dclid", "msclkid", "fbclid", "twclid"):
        assert name in CLICK_ID_PARAMS
    for name in ("ttclid", "li_fat_id", "yclid"):
        assert name in CLICK_ID_PARAMS
    assert len(set(CLICK_ID_PARAMS)) == len(CLICK_ID_PARAMS)


# ---- match_rule ------------------------------------------------------------------

LANDING = f"{SITE}/spring/offer?utm_source=Newsletter&gclid=abc&empty="
FROM_GOOGLE = parse_visit(LANDING, "https://www.google.com/search?q=x")
NO_REF = parse_visit(LANDING)

# (id, rule, facts, matches)
RULE_CASES = [
    ("empty rule never matches", MatchRule(), NO_REF, False),
    ("param name and value any case", MatchRule((("UTM_Source", "newsletter"),)), NO_REF, True),
    ("param value differs", MatchRule((("utm_source", "news"),)), NO_REF, False),
    ("param star present", MatchRule((("gclid", "*"),)), NO_REF, True),
    ("param star blank present", MatchRule((("empty", "*"),)), NO_REF, True),
    ("param star absent", MatchRule((("fbclid", "*"),)), NO_REF, False),
    ("any click id", MatchRule(click_ids=("msclkid", "gclid")), NO_REF, True),
    ("blank click id", MatchRule(click_ids=("empty",)), NO_REF, False),
    ("host exact", MatchRule(referrer_hosts=("www.google.com",)), FROM_GOOGLE, True),
    ("host subdomain", MatchRule(referrer_hosts=("google.com",)), FROM_GOOGLE, True),
    ("host suffix is not a domain", MatchRule(referrer_hosts=("gle.com",)), FROM_GOOGLE, False),
    ("host without referrer", MatchRule(referrer_hosts=("google.com",)), NO_REF, False),
    ("landing regex", MatchRule(landing_regex=r"/spring/"), NO_REF, True),
    ("landing regex miss", MatchRule(landing_regex=r"^/spring"), NO_REF, False),
    ("referrer regex", MatchRule(referrer_regex=r"[?&]q="), FROM_GOOGLE, True),
    ("referrer regex no referrer", MatchRule(referrer_regex=r".*"), NO_REF, False),
    ("invalid regex never matches", MatchRule(landing_regex="(unclosed"), NO_REF, False),
    ("external referrer", MatchRule(external_referrer=True), FROM_GOOGLE, True),
    ("external referrer absent", MatchRule(external_referrer=True), NO_REF, False),
    ("no referrer", MatchRule(no_referrer=True), NO_REF, True),
    ("no referrer with one", MatchRule(no_referrer=True), FROM_GOOGLE, False),
    (
        "all given fields must match",
        MatchRule(click_ids=("gclid",), referrer_hosts=("bing.com",)),
        FROM_GOOGLE,
        False,
    ),
    (
        "all given fields match",
        MatchRule(click_ids=("gclid",), referrer_hosts=("google.com",), landing_regex="offer"),
        FROM_GOOGLE,
        True,
    ),
]


@pytest.mark.parametrize(
    ("rule", "facts", "matches"),
    [case[1:] for case in RULE_CASES],
    ids=[case[0] for case in RULE_CASES],
)
def test_match_rule(rule, facts, matches) -> None:
    assert match_rule(rule, facts) is matches


@pytest.mark.parametrize(
    ("rule", "phase"),
    [
        (MatchRule(click_ids=("gclid",)), PHASE_LANDING),
        (MatchRule(landing_params=(("a", "b"),)), PHASE_LANDING),
        (MatchRule(landing_regex="x"), PHASE_LANDING),
        (MatchRule(referrer_hosts=("a.com",), landing_regex="x"), PHASE_LANDING),
        (MatchRule(referrer_hosts=("a.com",)), PHASE_REFERRER),
        (MatchRule(referrer_regex="x"), PHASE_REFERRER),
        (MatchRule(external_referrer=True), PHASE_REFERRER),
        (MatchRule(no_referrer=True), PHASE_DIRECT),
        (MatchRule(), None),
    ],
)
def test_rule_phase(rule, phase) -> None:
    assert rule_phase(rule) == phase


def test_regexes_are_compiled_once() -> None:
    assert core_sources._compiled(r"/spring(/|$)") is core_sources._compiled(r"/spring(/|$)")
    assert core_sources._compiled("(unclosed") is None


# ---- attribution -----------------------------------------------------------------

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
DAYS = 30


def _decision(source: str | None) -> SourceDecision:
    if source is None:
        return NO_MATCH
    return SourceDecision(source, f"rule of {source}", PHASE_LANDING)


# (id, current: (source, days ago) or None, new source, kept source, from now?, reason part)
TOUCH_CASES = [
    ("new visitor", None, "google-organic", "google-organic", True, "first visit"),
    ("new visitor without source", None, None, None, True, "first visit: no source"),
    ("new direct visitor", None, "direct", "direct", True, "first visit"),
    ("keeps first touch", ("google-organic", 3), "facebook", "google-organic", False, "keeps"),
    ("keeps at 29 days", ("google-organic", 29), "facebook", "google-organic", False, "keeps"),
    ("keeps at exactly 30 days", ("referral", 30), "facebook", "referral", False, "keeps"),
    ("switches after 30 days", ("google-organic", 31), "facebook", "facebook", True, "expired"),
    ("direct after 30 days", ("facebook", 45), "direct", "direct", True, "expired"),
    ("same source keeps its date", ("facebook", 10), "facebook", "facebook", False, "keeps"),
    (
        "last touch takes over",
        ("google-organic", 2),
        "google-ads",
        "google-ads",
        True,
        "last-touch",
    ),
    ("last touch refreshes itself", ("bing-ads", 20), "bing-ads", "bing-ads", True, "last-touch"),
    ("last touch over facebook", ("facebook", 1), "bing-ads", "bing-ads", True, "last-touch"),
    ("direct never replaces", ("google-organic", 1), "direct", "google-organic", False, "never"),
    ("direct never replaces ads", ("google-ads", 29), "direct", "google-ads", False, "never"),
    ("direct stays direct", ("direct", 5), "direct", "direct", False, "keeps"),
    ("real source beats direct", ("direct", 5), "facebook", "facebook", True, "beats direct"),
    ("source beats no source", (None, 5), "direct", "direct", True, "first source"),
    ("no match keeps current", ("email", 5), None, "email", False, "no source matched"),
    ("removed source is replaced", ("old-campaign", 5), "email", "email", True, "beats"),
]


@pytest.mark.parametrize(
    ("current", "new", "kept", "from_now", "reason"),
    [case[1:] for case in TOUCH_CASES],
    ids=[case[0] for case in TOUCH_CASES],
)
def test_attribute_visitor(current, new, kept, from_now, reason) -> None:
    touch = None
    if current is not None:
        touch = Touch(current[0], "earlier rule", NOW - timedelta(days=current[1]))
    result, why = attribute_visitor(touch, _decision(new), PRESET_SOURCES, NOW, DAYS)
    assert result.source == kept, why
    assert reason in why
    if from_now:
        assert result == Touch(new, _decision(new).rule, NOW)
    else:
        assert result is touch


def test_attribution_window_comes_from_the_setting() -> None:
    touch = Touch("google-organic", "referrer host google.com", NOW - timedelta(days=8))
    kept, _ = attribute_visitor(touch, _decision("facebook"), PRESET_SOURCES, NOW, 30)
    assert kept.source == "google-organic"
    switched, why = attribute_visitor(touch, _decision("facebook"), PRESET_SOURCES, NOW, 7)
    assert switched.source == "facebook" and "window 7 days" in why


def test_visit_to_attribution_end_to_end() -> None:
    first = resolve_source(PRESET_SOURCES, parse_visit(f"{SITE}/", "https://www.bing.com/"))
    touch, _ = attribute_visitor(None, first, PRESET_SOURCES, NOW, DAYS)
    later = NOW + timedelta(days=3)
    direct = resolve_source(PRESET_SOURCES, parse_visit(f"{SITE}/pricing"))
    touch, _ = attribute_visitor(touch, direct, PRESET_SOURCES, later, DAYS)
    assert touch == Touch("bing-organic", "referrer host bing.com", NOW)
    ads = resolve_source(PRESET_SOURCES, parse_visit(f"{SITE}/?gclid=x", "https://www.google.com/"))
    touch, why = attribute_visitor(touch, ads, PRESET_SOURCES, later, DAYS)
    assert touch == Touch("google-ads", "click id gclid", later) and "last-touch" in why


@pytest.mark.parametrize(
    ("name", "direct_like"),
    [
        ("direct", True),
        ("custom-direct", True),
        (None, True),
        ("not-configured", True),
        ("referral", False),
        ("google-organic", False),
        ("mixed", False),
    ],
)
def test_is_direct_like(name, direct_like) -> None:
    sources = dict(PRESET_SOURCES)
    sources["custom-direct"] = Source(
        "custom-direct", SourceKind.ONSITE, 99, rules=(MatchRule(no_referrer=True),)
    )
    sources["mixed"] = Source(
        "mixed",
        SourceKind.ONSITE,
        99,
        rules=(MatchRule(no_referrer=True), MatchRule(click_ids=("x",))),
    )
    assert is_direct_like(name, sources) is direct_like
