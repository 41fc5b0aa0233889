"""The ``sources``, ``targets`` and ``pools`` sections of ``config.yaml``: tracking
sources with their matching rules and presets, the numbers the swap script replaces,
and the pools that serve on-site sources.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ctm_pbx.adapters.config_sections.base import (
    SectionBuilder,
    optional,
    required,
    yaml_keys,
)
from ctm_pbx.adapters.yaml_source import (
    YNode,
    suggest,
)
from ctm_pbx.core.model import (
    MatchRule,
    Pool,
    Source,
    SourceKind,
    Target,
)
from ctm_pbx.core.presets import Preset, get_preset, preset_names

DEFAULT_PRIORITY = 50
SOURCE_KEYS = yaml_keys(Source, drop=("name",), rename={"rules": "match"})
RULE_KEYS = yaml_keys(MatchRule)
TARGET_KEYS = yaml_keys(Target)
POOL_KEYS = yaml_keys(Pool)


class SourceSections(SectionBuilder):
    """Builds the sources sections (see the module's docstring)."""

    def _source(self, name: str, node: YNode) -> Source | None:
        m = node.mapping(SOURCE_KEYS)
        if m is None:
            return None
        known, preset = self._preset(m)
        kind = self._source_kind(m, node, preset) if known else None
        rules = self._rules(m["match"]) if "match" in m else (preset.rules if preset else ())
        default_priority = preset.priority if preset else DEFAULT_PRIORITY
        priority = optional(m, "priority", YNode.integer, default_priority)
        last_touch = optional(m, "last_touch", YNode.boolean, False)
        label = optional(m, "label", YNode.text, preset.label if preset else "")
        if kind is None or rules is None or not self._rules_fit(kind, rules, m, node):
            return None
        return Source(
            name=name,
            kind=kind,
            priority=priority,
            rules=rules,
            preset=preset.name if preset else None,
            last_touch=last_touch,
            label=label,
        )

    def _preset(self, m: Mapping[str, YNode]) -> tuple[bool, Preset | None]:
        """(known, preset): known is False when a preset is named but does not exist."""
        node = m.get("preset")
        if node is None:
            return True, None
        name = node.text()
        preset = get_preset(name) if name is not None else None
        if preset is None and name is not None:
            names = preset_names()
            node.error(
                f"unknown preset '{name}'{suggest(name, names)}; valid presets: {', '.join(names)}"
            )
        return preset is not None, preset

    def _source_kind(
        self, m: Mapping[str, YNode], node: YNode, preset: Preset | None
    ) -> SourceKind | None:
        """The given kind, else the preset's; required without a preset."""
        if "kind" in m:
            kind = m["kind"].choice([k.value for k in SourceKind])
            return SourceKind(kind) if kind else None
        if preset is None:
            required(m, node, "kind")
            return None
        return preset.kind

    def _rules_fit(
        self, kind: SourceKind, rules: tuple[MatchRule, ...], m: Mapping[str, YNode], node: YNode
    ) -> bool:
        """Off-site sources have no rules; on-site ones need some."""
        if kind is SourceKind.OFFSITE and rules:
            where = m.get("match") or m.get("kind") or node
            where.error("an offsite source has no match rules (its callers dial a fixed number)")
            return False
        if kind is SourceKind.ONSITE and not rules:
            where = m.get("match") or node
            where.error("an onsite source needs match rules or a preset", line=where.entry_line)
            return False
        return True

    def _rules(self, node: YNode) -> tuple[MatchRule, ...] | None:
        items = [node] if node.is_mapping else node.sequence()
        if items is None:
            return None
        rules = [self._rule(item) for item in items]
        if any(r is None for r in rules):
            return None
        return tuple(r for r in rules if r is not None)

    def _rule(self, node: YNode) -> MatchRule | None:
        m = node.mapping(RULE_KEYS)
        if m is None:
            return None
        before = len(self.issues.items)
        rule = MatchRule(
            landing_params=optional(m, "landing_params", self._landing_params, ()),
            click_ids=optional(m, "click_ids", YNode.text_list, ()),
            referrer_hosts=optional(m, "referrer_hosts", self._hosts, ()),
            referrer_regex=optional(m, "referrer_regex", self._regex, None),
            landing_regex=optional(m, "landing_regex", self._regex, None),
            no_referrer=optional(m, "no_referrer", YNode.boolean, False),
            external_referrer=optional(m, "external_referrer", YNode.boolean, False),
        )
        raw_keys = len(node.node.value) if node.is_mapping else 0
        clean = len(self.issues.items) == before and len(m) == raw_keys
        if rule == MatchRule() and clean:
            node.error("this match rule has no condition and would match every visit")
        if rule.no_referrer and rule.external_referrer:
            node.error("no_referrer and external_referrer cannot both be true in one rule")
        return rule if len(self.issues.items) == before else None

    def _landing_params(self, node: YNode) -> tuple[tuple[str, str], ...] | None:
        m = node.mapping()
        if m is None:
            return None
        if not m:
            node.error("expected at least one query parameter")
            return None
        pairs = [(key, value.text()) for key, value in m.items()]
        return tuple((k, v) for k, v in pairs if v is not None)

    def _hosts(self, node: YNode) -> tuple[str, ...] | None:
        hosts = node.text_list()
        if hosts is None:
            return None
        bad = [h for h in hosts if not re.fullmatch(r"[A-Za-z0-9.-]+", h.strip())]
        if bad:
            node.error(f"expected bare host names like 'mail.example.com', got '{bad[0]}'")
            return None
        return tuple(h.strip().lower() for h in hosts)

    def _regex(self, node: YNode) -> str | None:
        pattern = node.text()
        if pattern is None:
            return None
        try:
            re.compile(pattern)
        except re.error as exc:
            node.error(f"invalid regular expression: {exc}")
            return None
        return pattern

    def _target(self, name: str, node: YNode) -> Target | None:
        m: Mapping[str, YNode] | None
        number_node: YNode | None
        if node.is_scalar:
            m, number_node = {}, node
        else:
            m = node.mapping(TARGET_KEYS)
            number_node = required(m, node, "number") if m is not None else None
        if m is None:
            return None
        number = self._number(number_node) if number_node else None
        label = optional(m, "label", YNode.text, "")
        if number is None or number_node is None:
            return None
        self._claim("target", number, number_node, ("target",))
        return Target(name=name, number=number, label=label)

    def _pool(self, name: str, node: YNode, sources: Mapping[str, Source]) -> Pool | None:
        m = node.mapping(POOL_KEYS)
        if m is None:
            return None
        source_node = required(m, node, "source")
        source = self._pool_source(source_node, sources) if source_node else None
        d = Pool(name=name, source="")
        pool = Pool(
            name=name,
            source=source or "",
            target=optional(m, "target", lambda n: self._ref(n, "targets", "target"), None),
            lease_minutes=optional(m, "lease_minutes", lambda n: n.integer(1), d.lease_minutes),
            cooldown_minutes=optional(
                m, "cooldown_minutes", lambda n: n.integer(0), d.cooldown_minutes
            ),
            overflow_number=optional(
                m, "overflow_number", lambda n: self._number(n, allow_null=True), None
            ),
        )
        target = self.numbers["target"].get(pool.overflow_number or "")
        if target is not None:
            m["overflow_number"].error(
                f"overflow_number {pool.overflow_number} is a target number ({target.path}):"
                f" the site's own number counts no calls; use a tracking number of"
                f" source '{source}' outside any pool"
            )
        return pool if source else None

    def _pool_source(self, node: YNode, sources: Mapping[str, Source]) -> str | None:
        """A declared source that is on-site."""
        source = self._ref(node, "sources", "source")
        known = sources.get(source) if source is not None else None
        if known is not None and known.kind is not SourceKind.ONSITE:
            node.error(f"source '{source}' is offsite; a pool needs an onsite source")
            return None
        return source
