"""Source resolution through an index of what the rules match on, built once per config.

``resolve_source``/``rank_sources`` (``ctm_pbx.core.sources``) check every rule of
every source: with hundreds of sources, every new visitor pays for all of them.
``SourceIndex`` gives the same answers (same winner, same rule text, same order of
matches, the precedence of the module doc of ``sources``) by checking only the rules
that can match the visit.

How
---
Each rule of an on-site source is filed under one condition it cannot match
without (its *key*), the most selective it has: an exact landing parameter value
(``utm_source=newsletter``, by name and case-folded value), a click id's name, a
landing parameter's presence (``"*"``), a referrer host (looked up under the
visit's host and each of its parent domains, so subdomains match), or, for rules
with nothing indexable, one of four small lists: landing regex (any readable
landing URL), referrer regex (any referrer), external referrer, direct (no external
referrer). A visit's candidates are the rules under its parameters, its referrer
host's suffixes and the lists that apply; each candidate is then checked in full
with the same function as the linear scan (``explain_rule``), so the index only
decides which rules are looked at, never whether one matches.

Rules are numbered in precedence order (phase, priority, source name, rule order),
so the first candidate that matches is the winner and the first match of each
source is that source's best rule: no sorting of matches, and ``resolve`` stops at
the first match.
"""

from __future__ import annotations

from collections.abc import Mapping

from ctm_pbx.core.model import MatchRule, Source, SourceKind
from ctm_pbx.core.sources import (
    NO_MATCH,
    PHASES,
    SourceDecision,
    SourceMatch,
    VisitFacts,
    explain_rule,
    rule_phase,
)

__all__ = ["SourceIndex"]

_PHASE_RANK = {phase: rank for rank, phase in enumerate(PHASES)}

# (source name, priority, phase, rule), in precedence order: a rule's number is its place
_Entry = tuple[str, int, str, MatchRule]


def _host_key(entry: str) -> str:
    """A ``referrer_hosts`` entry as ``sources`` compares it ("" never matches)."""
    return entry.strip().lower().rstrip(".")


class SourceIndex:
    """The on-site sources of a config, indexed by what their rules match on."""

    def __init__(self, sources: Mapping[str, Source]) -> None:
        ranked: list[tuple[tuple[int, int, str, int], _Entry]] = []
        for name, source in sources.items():
            if source.kind is not SourceKind.ONSITE:
                continue
            for i, rule in enumerate(source.rules):
                phase = rule_phase(rule)
                if phase is not None:
                    order = (_PHASE_RANK[phase], source.priority, name, i)
                    ranked.append((order, (name, source.priority, phase, rule)))
        ranked.sort(key=lambda item: item[0])
        self._entries: tuple[_Entry, ...] = tuple(entry for _order, entry in ranked)
        self._by_value: dict[tuple[str, str], list[int]] = {}  # (param, casefolded value)
        self._by_present: dict[str, list[int]] = {}  # param with "*"
        self._by_click: dict[str, list[int]] = {}  # click id name (needs a value)
        self._by_host: dict[str, list[int]] = {}  # referrer host or a parent domain
        self._landing_any: list[int] = []  # landing regex only
        self._referrer_any: list[int] = []  # referrer regex only
        self._external: list[int] = []  # external_referrer only
        self._direct: list[int] = []  # no_referrer only
        for number, (_name, _priority, _phase, rule) in enumerate(self._entries):
            self._file(number, rule)

    def __len__(self) -> int:
        """How many rules the index holds."""
        return len(self._entries)

    def _file(self, number: int, rule: MatchRule) -> None:
        """File rule ``number`` under the most selective condition it needs."""
        exact = [(n, v) for n, v in rule.landing_params if v.strip() != "*"]
        if exact:
            name, value = exact[0]
            key = (name.strip().lower(), value.strip().casefold())
            self._by_value.setdefault(key, []).append(number)
        elif rule.click_ids:
            for name in {c.strip().lower() for c in rule.click_ids}:
                self._by_click.setdefault(name, []).append(number)
        elif rule.landing_params:
            name = rule.landing_params[0][0].strip().lower()
            self._by_present.setdefault(name, []).append(number)
        elif rule.landing_regex is not None:
            self._landing_any.append(number)
        elif rule.referrer_hosts:
            for host in {_host_key(h) for h in rule.referrer_hosts} - {""}:
                self._by_host.setdefault(host, []).append(number)
        elif rule.referrer_regex is not None:
            self._referrer_any.append(number)
        elif rule.external_referrer:
            self._external.append(number)
        elif rule.no_referrer:
            self._direct.append(number)

    def _candidates(self, facts: VisitFacts) -> list[int]:
        """The numbers of the rules that may match ``facts``, in precedence order."""
        found: list[int] = []
        by_value, by_present, by_click = self._by_value, self._by_present, self._by_click
        for name, value in facts.params:
            hit = by_value.get((name, value.casefold()))
            if hit:
                found += hit
            hit = by_present.get(name)
            if hit:
                found += hit
            if value:
                hit = by_click.get(name)
                if hit:
                    found += hit
        if facts.landing_url:
            found += self._landing_any
        host = facts.referrer_host
        if host:
            by_host = self._by_host
            hit = by_host.get(host)
            if hit:
                found += hit
            dot = host.find(".")
            while dot >= 0:
                hit = by_host.get(host[dot + 1 :])
                if hit:
                    found += hit
                dot = host.find(".", dot + 1)
        if facts.referrer is not None:
            found += self._referrer_any
        found += self._external if facts.external_referrer else self._direct
        return sorted(set(found))

    def resolve(self, facts: VisitFacts) -> SourceDecision:
        """The source the visit comes from: what ``resolve_source`` answers."""
        entries = self._entries
        for number in self._candidates(facts):
            name, _priority, phase, rule = entries[number]
            how = explain_rule(rule, facts)
            if how is not None:
                return SourceDecision(source=name, rule=how, phase=phase)
        return NO_MATCH

    def rank(self, facts: VisitFacts) -> tuple[SourceMatch, ...]:
        """Every on-site source that matches the visit, the winner first: ``rank_sources``."""
        entries = self._entries
        found: list[SourceMatch] = []
        seen: set[str] = set()
        for number in self._candidates(facts):
            name, priority, phase, rule = entries[number]
            if name in seen:
                continue
            how = explain_rule(rule, facts)
            if how is not None:
                seen.add(name)
                found.append(SourceMatch(name, how, phase, priority))
        return tuple(found)
