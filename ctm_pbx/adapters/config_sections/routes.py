"""The ``receiving_numbers`` and ``routes`` sections of ``config.yaml``: every route
kind (simultaneous, sequential, geo, IVR, queue), its targets, prompts, whisper,
schedule and fallback, and the check that fallbacks never loop.
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
from ctm_pbx.core.geo import REGION_NAMES, GeoRule
from ctm_pbx.core.model import (
    Fallback,
    FallbackKind,
    GeoRoute,
    IvrRoute,
    MenuOption,
    Prompt,
    QueueRoute,
    QueueSettings,
    QueueStrategy,
    ReceivingNumber,
    Route,
    RouteOrder,
    RouteTarget,
    RouteType,
    SequentialRoute,
)

PROMPT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_/-]*$")
DEFAULT_DIAL = "PJSIP/{number}@carrier"
DIAL_PLACEHOLDERS = ("number", "digits")
RECEIVING_KEYS = yaml_keys(ReceivingNumber, rename={"dial_string": "dial"})
QUEUE_KEYS = yaml_keys(QueueSettings)
# every kind's fields (the builders say which kind may have which)
ROUTE_KEYS = yaml_keys(
    SequentialRoute,
    GeoRoute,
    IvrRoute,
    QueueSettings,
    rename={"geo_rules": "rules", "menu_timeout": "timeout"},
)
PROMPT_KEYS = ("prompts", "timeout", "attempts")
MENU_KEYS = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#"}
IVR_ONLY = ("prompts", "options", "timeout", "attempts", "invalid_prompt")
GEO_RULE_KEYS = ("states", "area_codes", "zip_prefixes", "route")
ROUTE_TARGET_KEYS = yaml_keys(RouteTarget)
FALLBACK_KEYS = ("route", "number", "receiving_number", "voicemail")


class RouteSections(SectionBuilder):
    """Builds the routes sections (see the module's docstring)."""

    def _receiving(self, name: str, node: YNode) -> ReceivingNumber | None:
        m = node.mapping(RECEIVING_KEYS)
        if m is None:
            return None
        number_node = required(m, node, "number")
        number = self._number(number_node) if number_node else None
        dial = optional(m, "dial", self._dial, DEFAULT_DIAL)
        label = optional(m, "label", YNode.text, "")
        if number is None or number_node is None:
            return None
        self._claim("receiving", number, number_node, ())
        return ReceivingNumber(name=name, number=number, dial=dial, label=label)

    def _dial(self, node: YNode) -> str | None:
        dial = node.text()
        if dial is None:
            return None
        if "/" not in dial:
            node.error(f"expected an Asterisk dial string like '{DEFAULT_DIAL}', got '{dial}'")
            return None
        unknown = [p for p in re.findall(r"\{([^}]*)\}", dial) if p not in DIAL_PLACEHOLDERS]
        if unknown:
            node.error(
                f"unknown placeholder '{{{unknown[0]}}}' in dial string "
                "(use {number} or {digits})"
            )
            return None
        return dial

    def _route(self, name: str, node: YNode) -> Route | None:
        m = node.mapping(ROUTE_KEYS)
        if m is None:
            return None
        type_node = required(m, node, "type")
        type_text = type_node.choice([t.value for t in RouteType]) if type_node else None
        if type_text == RouteType.GEO.value:
            return self._geo_route(name, node, m)
        if type_text == RouteType.IVR.value:
            return self._ivr_route(name, node, m)
        targets_node = required(m, node, "targets")
        for key in ("rules", "ask_zip"):
            if key in m:
                m[key].error(f"'{key}' applies only to geo routes")
        for key in (*IVR_ONLY, "default"):
            if key in m:
                m[key].error(f"'{key}' applies only to ivr (and geo) routes")
        if type_text != RouteType.QUEUE.value:
            for key in QUEUE_KEYS:
                if key in m:
                    m[key].error(f"'{key}' applies only to queue routes")
        targets = self._route_targets(targets_node) if targets_node else None
        order = RouteOrder(
            optional(
                m,
                "order",
                lambda n: n.choice([o.value for o in RouteOrder]),
                RouteOrder.FIXED.value,
            )
        )
        ring_timeout = optional(m, "ring_timeout", lambda n: n.integer(1, 600), 20)
        fallback = optional(m, "fallback", lambda n: self._fallback(name, n), None)
        label = optional(m, "label", YNode.text, "")
        if type_text is None or targets is None or targets_node is None:
            return None
        schedule, after_hours = self._route_schedule(name, m)
        route_type = RouteType(type_text)
        if not self._route_shape_ok(route_type, order, targets, targets_node, m):
            return None
        common = Route(
            name=name,
            type=route_type,
            targets=targets,
            ring_timeout=ring_timeout,
            fallback=fallback or Fallback(FallbackKind.HANGUP),
            label=label,
            schedule=schedule,
            after_hours=after_hours,
            whisper=optional(m, "whisper", self._whisper, ()),
            record=optional(m, "record", YNode.boolean, False),
        )
        if route_type is RouteType.SEQUENTIAL:
            return SequentialRoute(**vars(common), order=order)
        if route_type is RouteType.QUEUE:
            return QueueRoute(**vars(common), queue=self._queue(m))
        return common

    def _whisper(self, node: YNode) -> tuple[tuple[str, str], ...] | None:
        """A prompt for every call, or ``{source: prompt, ..., "*": prompt}``."""
        if node.is_scalar:
            prompt = self._one_prompt(node)
            return (("*", prompt),) if prompt else None
        entries = node.mapping()
        if entries is None:
            return None
        out = []
        for name, value in entries.items():
            if name != "*" and name not in self.declared["sources"]:
                value.error(
                    f"unknown source '{name}'{suggest(name, self.declared['sources'])}"
                    " (or '*' for every other call)",
                    line=value.entry_line,
                )
                return None
            prompt = self._one_prompt(value)
            if prompt is None:
                return None
            out.append((name, prompt))
        return tuple(out)

    def _queue(self, m: Mapping[str, YNode]) -> QueueSettings:
        d = QueueSettings()
        return QueueSettings(
            strategy=QueueStrategy(
                optional(
                    m,
                    "strategy",
                    lambda n: n.choice([s.value for s in QueueStrategy]),
                    d.strategy.value,
                )
            ),
            max_wait=optional(m, "max_wait", lambda n: n.integer(1, 86400), d.max_wait),
            max_length=optional(m, "max_length", lambda n: n.integer(0, 10000), d.max_length),
            wrapup=optional(m, "wrapup", lambda n: n.integer(0, 3600), d.wrapup),
            announce_every=optional(m, "announce_every", lambda n: n.integer(0, 3600), 0),
            periodic_prompt=optional(m, "periodic_prompt", self._one_prompt, None),
            music=optional(m, "music", YNode.text, d.music),
            priority_by_source=optional(m, "priority_by_source", self._source_priorities, ()),
            ring_in_use=optional(m, "ring_in_use", YNode.boolean, False),
        )

    def _source_priorities(self, node: YNode) -> tuple[tuple[str, int], ...] | None:
        entries = node.mapping()
        if entries is None:
            return None
        out = []
        for name, value in entries.items():
            if name not in self.declared["sources"]:
                value.error(
                    f"unknown source '{name}'{suggest(name, self.declared['sources'])}",
                    line=value.entry_line,
                )
                return None
            prio = value.integer(0, 100)
            if prio is None:
                return None
            out.append((name, prio))
        return tuple(out)

    def _route_schedule(
        self, name: str, m: Mapping[str, YNode]
    ) -> tuple[str | None, Fallback | None]:
        schedule = optional(m, "schedule", lambda n: self._ref(n, "schedules", "schedule"), None)
        after = optional(m, "after_hours", lambda n: self._fallback(name, n, record=False), None)
        if "after_hours" in m and "schedule" not in m:
            m["after_hours"].error("'after_hours' needs a 'schedule'")
        return schedule, after

    def _geo_route(self, name: str, node: YNode, m: Mapping[str, YNode]) -> Route | None:
        for key in (
            "targets",
            "order",
            "ring_timeout",
            "fallback",
            "whisper",
            "record",
            *IVR_ONLY,
            *QUEUE_KEYS,
        ):
            if key in m:
                m[key].error(f"'{key}' does not apply to geo routes (their rules pick a route)")
        rules_node = required(m, node, "rules")
        items = rules_node.sequence() if rules_node else None
        rules = [self._geo_rule(item) for item in items or []]
        default = optional(m, "default", lambda n: self._fallback(name, n, record=False), None)
        schedule, after_hours = self._route_schedule(name, m)
        if items is None or any(r is None for r in rules):
            return None
        if not rules:
            rules_node.error("a geo route needs at least 1 rule")  # type: ignore[union-attr]
            return None
        return GeoRoute(
            name=name,
            type=RouteType.GEO,
            label=optional(m, "label", YNode.text, ""),
            schedule=schedule,
            after_hours=after_hours,
            geo_rules=tuple(r for r in rules if r is not None),
            default=default,
            ask_zip=optional(m, "ask_zip", self._prompt, None),
        )

    def _prompt(self, node: YNode) -> Prompt | None:
        m = node.mapping(PROMPT_KEYS)
        if m is None:
            return None
        prompts_node = required(m, node, "prompts")
        prompts = self._prompt_names(prompts_node) if prompts_node else None
        if not prompts:
            return None
        return Prompt(
            prompts,
            timeout=optional(m, "timeout", lambda n: n.integer(1, 60), 8),
            attempts=optional(m, "attempts", lambda n: n.integer(1, 10), 2),
        )

    def _prompt_names(self, node: YNode) -> tuple[str, ...] | None:
        """One sound name or a list: ``ctm-pbx/welcome`` (no extension)."""
        items = node.sequence() if node.is_sequence else [node]
        out = []
        for item in items or []:
            text = item.text()
            if text is None:
                return None
            if not PROMPT_RE.match(text):
                item.error(
                    f"expected a sound name like 'ctm-pbx/welcome' (letters, digits, - _ /, "
                    f"no extension), got '{text}'"
                )
                return None
            out.append(text)
        if not out:
            node.error("expected at least 1 prompt")
            return None
        return tuple(out)

    def _ivr_route(self, name: str, node: YNode, m: Mapping[str, YNode]) -> Route | None:
        for key in ("targets", "order", "rules", "ask_zip", "whisper", "record", *QUEUE_KEYS):
            if key in m:
                m[key].error(f"'{key}' does not apply to ivr routes (their options lead on)")
        prompts_node, options_node = required(m, node, "prompts"), required(m, node, "options")
        prompts = self._prompt_names(prompts_node) if prompts_node else None
        options = self._menu_options(name, options_node) if options_node else None
        schedule, after_hours = self._route_schedule(name, m)
        route = IvrRoute(
            name=name,
            type=RouteType.IVR,
            label=optional(m, "label", YNode.text, ""),
            ring_timeout=optional(m, "ring_timeout", lambda n: n.integer(1, 600), 20),
            fallback=optional(m, "fallback", lambda n: self._fallback(name, n), None)
            or Fallback(FallbackKind.HANGUP),
            schedule=schedule,
            after_hours=after_hours,
            prompts=prompts or (),
            options=options or (),
            menu_timeout=optional(m, "timeout", lambda n: n.integer(1, 60), 5),
            attempts=optional(m, "attempts", lambda n: n.integer(1, 10), 3),
            invalid_prompt=optional(m, "invalid_prompt", self._one_prompt, None),
            default=optional(m, "default", lambda n: self._fallback(name, n, record=False), None),
        )
        return route if prompts and options else None

    def _one_prompt(self, node: YNode) -> str | None:
        names = self._prompt_names(node) if node.is_scalar else None
        if node.is_sequence:
            node.error("expected one sound name")
        return names[0] if names else None

    def _menu_options(self, route: str, node: YNode) -> tuple[MenuOption, ...] | None:
        entries = node.mapping()
        if entries is None:
            return None
        out = []
        for key, value in entries.items():
            if key not in MENU_KEYS:
                value.error(
                    f"menu keys are single keys 0-9, * or #, got '{key}'", line=value.entry_line
                )
                return None
            target = self._fallback(route, value, record=False)
            if target is None:
                return None
            out.append(MenuOption(key, target))
        if not out:
            node.error("an ivr menu needs at least 1 option")
            return None
        return tuple(out)

    def _geo_rule(self, node: YNode) -> GeoRule | None:
        m = node.mapping(GEO_RULE_KEYS)
        if m is None:
            return None
        route_node = required(m, node, "route")
        target = self._ref(route_node, "routes", "route") if route_node else None
        none: tuple[str, ...] = ()
        states = optional(m, "states", self._states, none)
        area_codes = optional(
            m, "area_codes", lambda n: self._digit_list(n, 3, 3, "area code"), none
        )
        zips = optional(m, "zip_prefixes", lambda n: self._digit_list(n, 1, 5, "ZIP prefix"), none)
        if not (states or area_codes or zips) and not any(
            k in m for k in ("states", "area_codes", "zip_prefixes")
        ):
            node.error("a geo rule needs states, area_codes or zip_prefixes")
            return None
        if target is None:
            return None
        return GeoRule(target, states, area_codes, zips)

    def _states(self, node: YNode) -> tuple[str, ...] | None:
        items = node.sequence()
        if items is None:
            return None
        known = set(REGION_NAMES.values())
        out = []
        for item in items:
            code = (item.text() or "").strip().upper()
            if code not in known:
                item.error(f"unknown state or province code '{code}' (expected e.g. IL, NY, ON)")
                return None
            out.append(code)
        return tuple(out)

    def _digit_list(
        self, node: YNode, shortest: int, longest: int, what: str
    ) -> tuple[str, ...] | None:
        items = node.sequence()
        if items is None:
            return None
        out = []
        for item in items:
            text = (item.text() or "").strip()
            if not (text.isdigit() and shortest <= len(text) <= longest):
                size = f"{shortest}" if shortest == longest else f"{shortest} to {longest}"
                article = "an" if what[0] in "aeiou" else "a"
                item.error(f"expected {article} {what} of {size} digits, got '{text}'")
                return None
            out.append(text)
        return tuple(out)

    def _route_shape_ok(
        self,
        route_type: RouteType,
        order: RouteOrder,
        targets: tuple[RouteTarget, ...],
        targets_node: YNode,
        m: Mapping[str, YNode],
    ) -> bool:
        ok = True
        if route_type is RouteType.SINGLE and len(targets) != 1:
            targets_node.error(f"a single route has exactly 1 target, got {len(targets)}")
            ok = False
        elif not targets:
            targets_node.error(f"a {route_type.value} route needs at least 1 target")
            ok = False
        if order is not RouteOrder.FIXED and route_type is not RouteType.SEQUENTIAL:
            m["order"].error(f"order '{order.value}' applies only to sequential routes")
            ok = False
        return ok

    def _route_targets(self, node: YNode) -> tuple[RouteTarget, ...] | None:
        items = node.sequence()
        if items is None:
            return None
        targets = [self._route_target(item) for item in items]
        seen: set[str] = set()
        for item, target in zip(items, targets, strict=True):
            if target is not None and target.receiving_number in seen:
                item.error(f"receiving number '{target.receiving_number}' is listed twice")
                return None
            seen.add(target.receiving_number if target else "")
        if any(t is None for t in targets):
            return None
        return tuple(t for t in targets if t is not None)

    def _route_target(self, node: YNode) -> RouteTarget | None:
        if not node.is_mapping:
            name = self._ref(node, "receiving_numbers", "receiving number")
            return RouteTarget(name) if name else None
        m = node.mapping(ROUTE_TARGET_KEYS)
        name_node = required(m, node, "receiving_number") if m is not None else None
        if m is None or name_node is None:
            return None
        name = self._ref(name_node, "receiving_numbers", "receiving number")
        weight = optional(m, "weight", lambda n: n.integer(1), 1)
        return RouteTarget(name, weight) if name else None

    def _fallback(self, route: str, node: YNode, *, record: bool = True) -> Fallback | None:
        if node.is_scalar:
            word = node.choice(("busy", "hangup"))
            return Fallback(FallbackKind(word)) if word else None
        m = node.mapping(FALLBACK_KEYS)
        if m is None:
            return None
        if len(m) != 1:
            node.error(
                "expected exactly one of 'route', 'number', 'receiving_number' or 'voicemail'"
                " (or busy, hangup)"
            )
            return None
        if "voicemail" in m:
            greeting = self._one_prompt(m["voicemail"])
            return Fallback(FallbackKind.VOICEMAIL, greeting) if greeting else None
        if "route" in m:
            target = self._ref(m["route"], "routes", "route")
            if target and record:
                self.fallback_refs[route] = (target, m["route"])
            return Fallback(FallbackKind.ROUTE, target) if target else None
        if "receiving_number" in m:
            name = self._ref(m["receiving_number"], "receiving_numbers", "receiving number")
            return Fallback(FallbackKind.NUMBER, name) if name else None
        number = self._number(m["number"])
        return Fallback(FallbackKind.NUMBER, number) if number else None

    def _check_fallback_cycles(self) -> None:
        """Report each fallback loop (``sales -> support -> sales``) once."""
        reported: set[frozenset[str]] = set()
        for start in self.fallback_refs:
            chain = [start]
            while chain[-1] in self.fallback_refs:
                nxt = self.fallback_refs[chain[-1]][0]
                if nxt in chain:
                    loop = chain[chain.index(nxt) :] + [nxt]
                    if frozenset(loop) not in reported:
                        reported.add(frozenset(loop))
                        node = self.fallback_refs[loop[0]][1]
                        node.error(f"fallback cycle: {' -> '.join(loop)}")
                    break
                chain.append(nxt)
