"""The source index answers what the linear scan answers (property test, pure core).

Configs and visits are generated from small vocabularies (parameter names and values
in mixed case, click ids, hosts and their subdomains, a few regexes, close priorities)
so that rules overlap, tie and nearly match; ``SourceIndex`` must give exactly the
winner and the ranking ``resolve_source``/``rank_sources`` give.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctm_pbx.adapters.config_loader import load_config
from ctm_pbx.core.model import MatchRule, Source, SourceKind
from ctm_pbx.core.source_index import SourceIndex
from ctm_pbx.core.sources import parse_visit, rank_sources, resolve_source

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.yaml"


PARAMS = ["utm_source", " UTM_Source ", "utm_medium", "coupon", "gclid"]
VALUES = ["google", "Google ", "", "*", " * ", "ß", "SS", "x y"]
CLICK_IDS = ["gclid", " GCLID", "msclkid", "coupon", ""]
HOSTS = [
    "google.com",
    "www.google.com",
    "Google.COM.",
    "mail.example.com",
    "example.com",
    "co.uk",
    "yelp.co.uk",
    "acme.com",
    "com",
    "",
    " ",
    "t.co",
]
REGEXES = [
    r"^https?://(www\.)?google\.",
    r"/spring(/|$)",
    r"archive",
    r"",
    r"(",  # invalid: the loader rejects it, the core treats it as matching nothing
    r"\?ref=",
]

KINDS = (
    "landing_params",
    "click_ids",
    "referrer_hosts",
    "referrer_regex",
    "landing_regex",
    "no_referrer",
    "external_referrer",
)
CONDITION = {
    "landing_params": st.lists(
        st.tuples(st.sampled_from(PARAMS), st.sampled_from(VALUES)), min_size=1, max_size=2
    ).map(tuple),
    "click_ids": st.lists(st.sampled_from(CLICK_IDS), min_size=1, max_size=2).map(tuple),
    "referrer_hosts": st.lists(st.sampled_from(HOSTS), min_size=1, max_size=2).map(tuple),
    "referrer_regex": st.sampled_from(REGEXES),
    "landing_regex": st.sampled_from(REGEXES),
    "no_referrer": st.just(True),
    "external_referrer": st.just(True),
}


_KINDS = st.lists(st.sampled_from(KINDS), max_size=3, unique=True)


@st.composite
def _rules(draw) -> MatchRule:
    """A rule of one to three conditions (or none: it never matches)."""
    return MatchRule(**{kind: draw(CONDITION[kind]) for kind in draw(_KINDS)})


_SOURCE = st.tuples(
    st.sampled_from([SourceKind.ONSITE] * 4 + [SourceKind.OFFSITE]),
    st.integers(min_value=1, max_value=4),
    st.lists(_rules(), max_size=5).map(tuple),
)
SOURCE_MAPS = st.dictionaries(st.sampled_from("abcdefghij"), _SOURCE, min_size=1, max_size=10).map(
    lambda drawn: {
        name: Source(name, kind, priority, rules) for name, (kind, priority, rules) in drawn.items()
    }
)

SITE_HOSTS = ["www.acme.com", "acme.com", "shop.acme.com"]
REF_HOSTS = [
    "www.google.com",
    "google.com",
    "news.google.com",
    "mail.example.com",
    "a.mail.example.com",
    "example.com",
    "yelp.co.uk",
    "www.yelp.co.uk",
    "t.co",
    "www.acme.com",
    "acme.com",
    "notgoogle.com",
]
PATHS = ["/", "/spring", "/spring/offer", "/archive/1", "/pricing"]
ODD_REFERRERS = ["", "/relative", "about:blank", "https://news.partner.example/archive/"]


# how a visit may write a value a rule gives: as is, in another case, with spaces
SPELLINGS = (str, str.upper, str.lower, str.title, " {} ".format)


def _rule_words(sources: dict[str, Source]) -> tuple[list[tuple[str, str]], list[str]]:
    """The (parameter, value) pairs and referrer hosts the rules of ``sources`` name."""
    pairs = [(n, v) for n in PARAMS + CLICK_IDS for v in VALUES[:2]]
    hosts = list(REF_HOSTS)
    for source in sources.values():
        for rule in source.rules:
            pairs += [(n, v.replace("*", "any")) for n, v in rule.landing_params]
            pairs += [(c, "1") for c in rule.click_ids]
            hosts += [h.strip().rstrip(".") for h in rule.referrer_hosts if h.strip(" .")]
    return pairs, hosts


@st.composite
def configs_and_visits(draw) -> tuple[dict[str, Source], list[tuple[str | None, str | None]]]:
    """Sources, and visits that mostly say what some of their rules look for."""
    sources = draw(SOURCE_MAPS)
    pairs, hosts = _rule_words(sources)
    spelled = st.builds(
        lambda pair, name_as, value_as: (name_as(pair[0]), value_as(pair[1])),
        st.sampled_from(pairs),
        st.sampled_from(SPELLINGS),
        st.sampled_from(SPELLINGS),
    )
    params = st.lists(
        spelled | st.tuples(st.sampled_from(PARAMS), st.sampled_from(VALUES)), max_size=5
    )
    referrers = (
        st.builds(
            "https://{}{}{}".format,
            st.sampled_from(["", "www.", "a.b."]),
            st.sampled_from(hosts).map(str.lower),
            st.sampled_from(PATHS),
        )
        | st.none()
        | st.sampled_from(ODD_REFERRERS)
    )
    visits = []
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        query = "&".join(f"{quote(k.strip())}={quote(v)}" for k, v in draw(params))
        path, host = draw(st.sampled_from(PATHS)), draw(st.sampled_from(SITE_HOSTS))
        odd = [f"{path}?{query}", f"HTTP://{host.upper()}{path}", None, "", "not a url"]
        shape = draw(st.integers(min_value=0, max_value=14))  # mostly a full URL
        landing = f"https://{host}{path}?{query}" if shape >= len(odd) else odd[shape]
        visits.append((landing, draw(referrers)))
    return sources, visits


@settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(drawn=configs_and_visits())
def test_the_index_answers_what_the_linear_scan_answers(drawn) -> None:
    sources, visits = drawn
    index = SourceIndex(sources)
    for landing, referrer in visits:
        facts = parse_visit(landing, referrer)
        assert index.rank(facts) == rank_sources(sources, facts), (landing, referrer)
        assert index.resolve(facts) == resolve_source(sources, facts), (landing, referrer)


EXAMPLE_VISITS = [
    ("https://www.example.com/?gclid=abc", "https://www.google.com/"),
    ("https://www.example.com/?utm_source=Newsletter&utm_campaign=SPRING", None),
    ("https://www.example.com/spring", "https://webmail.mail.example.com/inbox"),
    ("https://www.example.com/?mlid=7", "https://news.partner.example/archive/2024"),
    ("https://www.example.com/", "https://www.bing.com/search?q=x"),
    ("https://www.example.com/", "https://l.facebook.com/"),
    ("https://www.example.com/?utm_medium=e-mail", None),
    ("https://www.example.com/pricing", "https://www.example.com/"),
    ("not a url", None),
]


@pytest.mark.parametrize(("landing", "referrer"), EXAMPLE_VISITS)
def test_the_example_config(landing, referrer) -> None:
    sources = load_config(EXAMPLE, env={}).sources
    index = SourceIndex(sources)
    facts = parse_visit(landing, referrer)
    assert index.rank(facts) == rank_sources(sources, facts)
    assert index.resolve(facts) == resolve_source(sources, facts)


def test_a_rule_is_filed_once_and_checked_only_when_it_can_match() -> None:
    """A visit's candidates are the rules under its own values, not the whole config."""
    sources = {
        f"s{i}": Source(
            f"s{i}",
            SourceKind.ONSITE,
            50,
            (
                MatchRule(landing_params=(("utm_source", f"c{i}"), ("utm_campaign", "*"))),
                MatchRule(referrer_hosts=(f"p{i}.example.net", f"P{i}.example.net.")),
            ),
        )
        for i in range(500)
    }
    index = SourceIndex(sources)
    assert len(index) == 1000
    facts = parse_visit("https://acme.com/?utm_source=C7&utm_campaign=x")
    assert [index._entries[n][0] for n in index._candidates(facts)] == ["s7"]
    facts = parse_visit("https://acme.com/", "https://blog.p9.example.net/")
    assert [index._entries[n][0] for n in index._candidates(facts)] == ["s9"]


# (id, rule, landing URL, referrer, matches): the corners of how the scan compares; the
# index must file each rule under the key the scan reads it by
CORNERS = [
    (
        "case-folded value",
        MatchRule((("utm_source", "ß"),)),
        "https://a.com/?utm_source=SS",
        None,
        True,
    ),
    ("padded name", MatchRule(((" UTM_Source ", "x"),)), "https://a.com/?utm_source=X", None, True),
    ("padded star", MatchRule((("coupon", " * "),)), "https://a.com/?coupon=abc", None, True),
    ("blank star", MatchRule((("coupon", "*"),)), "https://a.com/?coupon=", None, True),
    ("blank value", MatchRule((("coupon", ""),)), "https://a.com/?coupon=", None, True),
    ("padded click id", MatchRule(click_ids=(" MLID ",)), "https://a.com/?mlid=1", None, True),
    ("blank click id", MatchRule(click_ids=("mlid",)), "https://a.com/?mlid=", None, False),
    ("path landing regex", MatchRule(landing_regex="^/spring"), "/spring?x=1", None, True),
    (
        "host, dot",
        MatchRule(referrer_hosts=("Mail.Example.COM.",)),
        "/",
        "https://a.mail.example.com/",
        True,
    ),
    ("host itself", MatchRule(referrer_hosts=("t.co",)), "/", "https://t.co/x", True),
    ("host lookalike", MatchRule(referrer_hosts=("t.co",)), "/", "https://at.co/x", False),
    ("blank host", MatchRule(referrer_hosts=(" ",)), "/", "https://t.co/x", False),
    (
        "referrer regex",
        MatchRule(referrer_regex="archive"),
        "/",
        "https://n.example/archive/",
        True,
    ),
    ("same site", MatchRule(no_referrer=True), "https://www.a.com/", "https://a.com/", True),
    ("external", MatchRule(external_referrer=True), "https://a.com/", "https://b.com/", True),
]


@pytest.mark.parametrize(
    ("rule", "landing", "referrer", "matches"),
    [c[1:] for c in CORNERS],
    ids=[c[0] for c in CORNERS],
)
def test_corners_of_matching(rule, landing, referrer, matches) -> None:
    sources = {"s": Source("s", SourceKind.ONSITE, 50, (rule,))}
    facts = parse_visit(landing, referrer)
    expected = resolve_source(sources, facts)
    assert (expected.source == "s") is matches
    assert SourceIndex(sources).resolve(facts) == expected
    assert SourceIndex(sources).rank(facts) == rank_sources(sources, facts)
