"""Which tracking source a website visit comes from, and which source a visitor keeps.

Pure: strings and datetimes in, frozen values out. No I/O and no clock (``now`` is
passed in).

Reading a visit
---------------
``parse_visit`` turns the landing URL and the referrer into ``VisitFacts``: hosts,
query parameters (names lower-cased, first value of each), UTM tags, click ids, and
whether the referrer is another site (its host differs from the landing host,
ignoring a leading ``www.``). A URL that cannot be read is treated as absent; it
never raises. A URL without a scheme (``example.com/?gclid=1``) is read as https.

Matching
--------
A source matches a visit when any of its rules matches; a rule matches when all of
its given conditions hold (see ``MatchRule``; a rule without conditions matches
nothing). Parameter names and values, click ids and hosts compare case-insensitively;
``landing_params`` value ``"*"`` means "present"; a click id needs a non-empty value;
``referrer_hosts`` match the host or any subdomain; regexes use ``re.search`` on the
URL with its scheme and host lower-cased. Off-site sources never match a visit.

Precedence (``resolve_source``)
-------------------------------
Every condition belongs to a phase, checked in this order:

1. ``landing``: what the landing URL says (``click_ids``, ``landing_params``,
   ``landing_regex``). Someone tagged the link: the strongest evidence.
2. ``referrer``: where the browser came from (``referrer_hosts``, ``referrer_regex``,
   ``external_referrer``).
3. ``direct``: nothing points anywhere (``no_referrer``: no referrer, or a same-site one).

A rule's phase is the earliest phase among its conditions (a rule mixing landing and
referrer conditions is a landing rule); a source's phase for a visit is that of its
earliest matching rule. The matching source with the earliest phase wins; within a
phase the lower ``priority`` wins; ties go to the source name (alphabetical). So a
Google Ads click (``gclid``: landing) beats Google organic (referrer ``google.com``:
referrer) whatever their priorities, and ``direct`` only wins when nothing else matched.
``rank_sources``/``resolve_source`` check every rule: the reference, and the explain
path. ``ctm_pbx.core.source_index.SourceIndex`` gives the same answers by checking
only the rules a visit's values can match (the visit API uses it).

Attribution (``attribute_visitor``)
-----------------------------------
First touch: a visitor keeps the source of its first touch for ``first_touch_days``.
A new visit's source takes over when the current touch is older than that, when the
new source has ``last_touch: true`` (paid search, usually), or when the current
source is unknown or direct-like and the new one is a real source. A direct-like
visit (no referrer) never replaces a real source within the window.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from urllib.parse import SplitResult, parse_qsl, urlsplit, urlunsplit

from ctm_pbx.core.model import MatchRule, Source, SourceKind

__all__ = [
    "CLICK_ID_PARAMS",
    "NO_MATCH",
    "PHASES",
    "PHASE_DIRECT",
    "PHASE_LANDING",
    "PHASE_NONE",
    "PHASE_REFERRER",
    "UTM_PARAMS",
    "SourceDecision",
    "SourceMatch",
    "Touch",
    "VisitFacts",
    "attribute_visitor",
    "explain_rule",
    "is_direct_like",
    "match_rule",
    "parse_visit",
    "rank_sources",
    "resolve_source",
    "rule_phase",
    "why_outranked",
]

# Query parameters ad platforms add to a landing URL to identify one click.
CLICK_ID_PARAMS: tuple[str, ...] = (
    "gclid",  # Google Ads
    "gbraid",  # Google Ads (iOS app to web)
    "wbraid",  # Google Ads (web to app)
    "dclid",  # Google Display & Video 360 / Campaign Manager
    "msclkid",  # Microsoft Ads (Bing)
    "fbclid",  # Facebook / Instagram
    "twclid",  # X (Twitter)
    "ttclid",  # TikTok
    "li_fat_id",  # LinkedIn
    "yclid",  # Yandex
    "epik",  # Pinterest
    "rdt_cid",  # Reddit
    "sccid",  # Snapchat
    "qclid",  # Quora
)

UTM_PARAMS: tuple[str, ...] = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
)

PHASE_LANDING = "landing"
PHASE_REFERRER = "referrer"
PHASE_DIRECT = "direct"
PHASE_NONE = "none"  # the phase of a decision when no source matched
PHASES: tuple[str, ...] = (PHASE_LANDING, PHASE_REFERRER, PHASE_DIRECT)
_PHASE_RANK = {phase: rank for rank, phase in enumerate(PHASES)}

_HOST_RE = re.compile(r"[\w-]+(?:\.[\w-]+)*|[0-9a-f:.]+")  # a DNS name or an IP literal
_OPAQUE_RE = re.compile(r"[a-z][a-z0-9+.-]*:(?!\d|//)", re.IGNORECASE)  # mailto:, about:


# ---- reading a visit -------------------------------------------------------------


@dataclass(frozen=True)
class VisitFacts:
    """What a visit says about where it came from. Absent parts are empty/None."""

    landing_url: str = ""  # normalised (scheme and host lower-cased); "" if unreadable
    landing_host: str | None = None
    landing_path: str = ""
    params: tuple[tuple[str, str], ...] = ()  # (lower-cased name, first value), URL order
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None
    click_ids: tuple[str, ...] = ()  # names from CLICK_ID_PARAMS with a value, URL order
    referrer: str | None = None  # normalised; None when absent or unreadable
    referrer_host: str | None = None
    external_referrer: bool = False  # the referrer is another site

    def param(self, name: str) -> str | None:
        """The first value of query parameter ``name`` (any case), else None."""
        key = name.strip().lower()
        for k, v in self.params:
            if k == key:
                return v
        return None

    @property
    def has_campaign(self) -> bool:
        """Whether the landing URL carries UTM tags or a known click id."""
        return bool(self.click_ids) or any(self.param(p) for p in UTM_PARAMS)


@dataclass(frozen=True)
class _Url:
    url: str
    host: str | None
    path: str
    query: str


def _split(text: str) -> SplitResult:
    if text.startswith("/") and not text.startswith("//"):
        return urlsplit(text)  # a path: "/pricing?gclid=1"
    if "://" not in text and not text.startswith("//"):
        if _OPAQUE_RE.match(text):
            return urlsplit("")  # "mailto:a@b.c", "about:blank", "javascript:...": no host
        text = "//" + text  # no scheme: "www.example.com/pricing"
    return urlsplit(text)


def _read_url(value: object) -> _Url | None:
    """A URL's parts, or None when ``value`` is not a readable URL."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    try:
        parts = _split(text)
        host = parts.hostname  # lower-cased by urlsplit
    except ValueError:  # e.g. "http://[::1" or an invalid IDN
        return None
    if not parts.netloc:
        if not text.startswith("/"):
            return None
        return _Url(
            urlunsplit(("", "", parts.path, parts.query, "")), None, parts.path, parts.query
        )
    host = (host or "").rstrip(".")
    if not host or len(host) > 253 or not _HOST_RE.fullmatch(host):
        return None
    if any(len(label) > 63 for label in host.split(".")):
        return None  # not a DNS name
    if not parts.scheme and "." not in host and ":" not in host:
        return None  # "about:blank", "foo": not a host name
    path = parts.path or "/"
    url = urlunsplit(
        (parts.scheme.lower() or "https", parts.netloc.lower(), path, parts.query, parts.fragment)
    )
    return _Url(url, host, path, parts.query)


def _query_params(query: str) -> tuple[tuple[str, str], ...]:
    first: dict[str, str] = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True)
    except ValueError:
        return ()
    for name, value in pairs:
        key = name.strip().lower()
        if key and key not in first:
            first[key] = value.strip()
    return tuple(first.items())


def _site(host: str | None) -> str | None:
    """The host without a leading ``www.``: ``www.example.com`` and ``example.com`` match."""
    if host is not None and host.startswith("www."):
        return host[4:]
    return host


def parse_visit(landing_url: str, referrer: str | None = None) -> VisitFacts:
    """The facts of a visit landing on ``landing_url`` from ``referrer``. Never raises."""
    landing = _read_url(landing_url)
    ref = _read_url(referrer)
    if ref is not None and ref.host is None:
        ref = None  # a referrer is a full URL; a bare path says nothing
    params = _query_params(landing.query) if landing else ()
    values = dict(params)
    landing_host = landing.host if landing else None
    ref_host = ref.host if ref else None
    return VisitFacts(
        landing_url=landing.url if landing else "",
        landing_host=landing_host,
        landing_path=landing.path if landing else "",
        params=params,
        utm_source=values.get("utm_source"),
        utm_medium=values.get("utm_medium"),
        utm_campaign=values.get("utm_campaign"),
        utm_term=values.get("utm_term"),
        utm_content=values.get("utm_content"),
        click_ids=tuple(k for k, v in params if k in CLICK_ID_PARAMS and v),
        referrer=ref.url if ref else None,
        referrer_host=ref_host,
        external_referrer=ref_host is not None and _site(ref_host) != _site(landing_host),
    )


# ---- matching --------------------------------------------------------------------


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    """``pattern`` compiled once; None when invalid (the config loader rejects those)."""
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _search(pattern: str, text: str | None) -> bool:
    compiled = _compiled(pattern)
    return text is not None and compiled is not None and compiled.search(text) is not None


def rule_phase(rule: MatchRule) -> str | None:
    """The earliest phase among the rule's conditions; None for a rule without any."""
    if rule.click_ids or rule.landing_params or rule.landing_regex is not None:
        return PHASE_LANDING
    if rule.referrer_hosts or rule.referrer_regex is not None or rule.external_referrer:
        return PHASE_REFERRER
    if rule.no_referrer:
        return PHASE_DIRECT
    return None


def _host_under(host: str | None, hosts: tuple[str, ...]) -> str | None:
    """The entry of ``hosts`` that ``host`` equals or is a subdomain of."""
    if host is None:
        return None
    for entry in hosts:
        want = entry.strip().lower().rstrip(".")
        if want and (host == want or host.endswith("." + want)):
            return want
    return None


def _landing_parts(rule: MatchRule, facts: VisitFacts) -> list[str] | None:
    """How the rule's landing conditions hold, or None when one fails."""
    parts: list[str] = []
    if rule.click_ids:
        found = next((c.strip().lower() for c in rule.click_ids if facts.param(c)), None)
        if found is None:
            return None
        parts.append(f"click id {found}")
    for name, expected in rule.landing_params:
        actual = facts.param(name)
        key = name.strip().lower()
        if actual is None:
            return None
        if expected.strip() == "*":
            parts.append(f"{key} present")
        elif actual.casefold() == expected.strip().casefold():
            parts.append(f"{key}={expected.strip()}")
        else:
            return None
    if rule.landing_regex is not None:
        if not facts.landing_url or not _search(rule.landing_regex, facts.landing_url):
            return None
        parts.append(f"landing URL matches '{rule.landing_regex}'")
    return parts


def _referrer_parts(rule: MatchRule, facts: VisitFacts) -> list[str] | None:
    """How the rule's referrer and direct conditions hold, or None when one fails."""
    parts: list[str] = []
    if rule.referrer_hosts:
        host = _host_under(facts.referrer_host, rule.referrer_hosts)
        if host is None:
            return None
        parts.append(f"referrer host {host}")
    if rule.referrer_regex is not None:
        if not _search(rule.referrer_regex, facts.referrer):
            return None
        parts.append(f"referrer matches '{rule.referrer_regex}'")
    if rule.external_referrer:
        if not facts.external_referrer:
            return None
        parts.append(f"external referrer {facts.referrer_host}")
    if rule.no_referrer:
        if facts.external_referrer:
            return None
        parts.append("no referrer" if facts.referrer is None else "same-site referrer")
    return parts


def explain_rule(rule: MatchRule, facts: VisitFacts) -> str | None:
    """A human-readable account of how ``rule`` matches ``facts``; None if it does not."""
    if rule_phase(rule) is None:
        return None
    landing = _landing_parts(rule, facts)
    if landing is None:
        return None
    referrer = _referrer_parts(rule, facts)
    if referrer is None:
        return None
    return ", ".join(landing + referrer)


def match_rule(rule: MatchRule, facts: VisitFacts) -> bool:
    """Whether every condition ``rule`` gives holds for the visit."""
    return explain_rule(rule, facts) is not None


# ---- precedence ------------------------------------------------------------------


@dataclass(frozen=True)
class SourceMatch:
    """A source that matches a visit, with its best (earliest-phase) rule."""

    source: str
    rule: str  # how the rule matched, e.g. "click id gclid"
    phase: str  # PHASE_LANDING, PHASE_REFERRER or PHASE_DIRECT
    priority: int


@dataclass(frozen=True)
class SourceDecision:
    """The source a visit is credited to (None when no source matched)."""

    source: str | None
    rule: str  # e.g. "click id gclid", "utm_source=google, utm_medium=cpc", "no referrer"
    phase: str  # a PHASES entry, or PHASE_NONE


NO_MATCH = SourceDecision(source=None, rule="no source matched", phase=PHASE_NONE)


def _precedence(match: SourceMatch) -> tuple[int, int, str]:
    return (_PHASE_RANK[match.phase], match.priority, match.source)


def rank_sources(sources: Mapping[str, Source], facts: VisitFacts) -> tuple[SourceMatch, ...]:
    """Every on-site source that matches the visit, the winner first (see module doc)."""
    found: list[SourceMatch] = []
    for name, source in sources.items():
        if source.kind is not SourceKind.ONSITE:
            continue
        best: SourceMatch | None = None
        for rule in source.rules:
            phase = rule_phase(rule)
            if phase is None or (best and _PHASE_RANK[phase] >= _PHASE_RANK[best.phase]):
                continue
            how = explain_rule(rule, facts)
            if how is not None:
                best = SourceMatch(name, how, phase, source.priority)
        if best is not None:
            found.append(best)
    return tuple(sorted(found, key=_precedence))


def resolve_source(sources: Mapping[str, Source], facts: VisitFacts) -> SourceDecision:
    """The source the visit comes from: earliest phase, then lowest priority, then name."""
    ranked = rank_sources(sources, facts)
    if not ranked:
        return NO_MATCH
    best = ranked[0]
    return SourceDecision(source=best.source, rule=best.rule, phase=best.phase)


def why_outranked(winner: SourceMatch, loser: SourceMatch) -> str:
    """Why ``loser`` lost to ``winner``, for people reading an explanation."""
    if winner.phase != loser.phase:
        return f"{loser.phase} phase comes after {winner.phase} phase"
    if winner.priority != loser.priority:
        return f"priority {loser.priority} is after {winner.priority}"
    return f"same phase and priority; '{winner.source}' sorts first"


# ---- attribution -----------------------------------------------------------------


@dataclass(frozen=True)
class Touch:
    """A visit that a visitor is attributed to: its source, how it matched, and when."""

    source: str | None
    rule: str
    at: datetime


def is_direct_like(name: str | None, sources: Mapping[str, Source]) -> bool:
    """Whether source ``name`` says nothing about where a visitor came from.

    True for None, for a source not in ``sources`` (removed from the config), for the
    ``direct`` preset, and for a source whose every rule is a direct-phase rule.
    """
    if name is None or name not in sources:
        return True
    source = sources[name]
    if source.preset == "direct":
        return True
    return bool(source.rules) and all(rule_phase(r) == PHASE_DIRECT for r in source.rules)


def _days(age: timedelta) -> str:
    return f"{age.days} day{'s' * (age.days != 1)}"


def attribute_visitor(
    current: Touch | None,
    decision: SourceDecision,
    sources: Mapping[str, Source],
    now: datetime,
    first_touch_days: int,
) -> tuple[Touch, str]:
    """The touch a visitor is attributed to after a visit, and why.

    ``current`` is the visitor's touch so far (None for a new visitor), ``decision``
    the source of this visit. In order: a new visitor takes the visit; a touch older
    than ``first_touch_days`` is replaced by the visit (whatever it is); a visit
    without a source changes nothing; a visitor without a source takes the visit's;
    a direct-like visit never replaces a source; a ``last_touch`` source takes over;
    a real source replaces a direct-like one; otherwise the first touch stays.
    """
    new = Touch(decision.source, decision.rule, now)
    label = decision.source or "no source"
    if current is None:
        return new, f"first visit: {label} ({decision.rule})"
    age = now - current.at
    window = timedelta(days=first_touch_days)
    if age > window:
        return new, (
            f"first touch {current.source or 'without a source'} expired "
            f"({_days(age)} old, window {first_touch_days} days): now {label}"
        )
    if decision.source is None:
        return current, f"no source matched this visit: keeps {current.source or 'no source'}"
    if current.source is None:
        return new, f"{label} is the visitor's first source"
    if is_direct_like(decision.source, sources):
        if decision.source == current.source:
            return current, f"keeps first touch {current.source}"
        return current, f"a direct visit ({label}) never replaces {current.source}"
    if sources[decision.source].last_touch:
        return new, f"last-touch source {label} takes over from {current.source}"
    if is_direct_like(current.source, sources):
        return new, f"a real source ({label}) beats {current.source}"
    return current, (
        f"keeps first touch {current.source} ({_days(age)} old, window {first_touch_days} days)"
    )
