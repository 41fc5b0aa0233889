"""The ``tracking_numbers`` section of ``config.yaml``: each DID with its source, pool
or route, checked against the roles numbers already have.
"""

from __future__ import annotations

from collections.abc import Mapping

from ctm_pbx.adapters.config_sections.base import (
    SectionBuilder,
    optional,
    required,
    yaml_keys,
)
from ctm_pbx.adapters.yaml_source import YNode
from ctm_pbx.core.inventory import InventoryError, role_clash, source_of_pool
from ctm_pbx.core.model import (
    Pool,
    ReceivingNumber,
    Source,
    Target,
    TrackingNumberDecl,
)

TRACKING_NUMBER_KEYS = yaml_keys(TrackingNumberDecl)


class NumberSections(SectionBuilder):
    """Builds the numbers sections (see the module's docstring)."""

    def _tracking_numbers(
        self,
        node: YNode | None,
        sources: Mapping[str, Source],
        pools: Mapping[str, Pool],
        targets: Mapping[str, Target],
        receiving: Mapping[str, ReceivingNumber],
    ) -> tuple[TrackingNumberDecl, ...]:
        items = node.sequence() if node is not None else []
        decls = [
            self._tracking_number(item, sources, pools, targets, receiving) for item in items or []
        ]
        return tuple(d for d in decls if d is not None)

    def _tracking_number(
        self,
        node: YNode,
        sources: Mapping[str, Source],
        pools: Mapping[str, Pool],
        targets: Mapping[str, Target],
        receiving: Mapping[str, ReceivingNumber],
    ) -> TrackingNumberDecl | None:
        m = node.mapping(TRACKING_NUMBER_KEYS)
        if m is None:
            return None
        number_node, route_node = required(m, node, "number"), required(m, node, "route")
        number = self._number(number_node) if number_node else None
        route = self._ref(route_node, "routes", "route") if route_node else None
        source, pool = self._tracking_source(node, m, pools)
        label = optional(m, "label", YNode.text, "")
        if number is not None and number_node is not None:
            clash = role_clash(number, targets, receiving)  # the CLI's rule too
            if clash is not None:
                first = self.numbers[clash.role][number]
                number_node.error(f"{clash} ({first.path}, line {first.line})")
                return None
            self._claim("tracking", number, number_node, ("tracking",))
        if number is None or route is None or source is None:
            return None
        return TrackingNumberDecl(number=number, source=source, pool=pool, route=route, label=label)

    def _tracking_source(
        self, node: YNode, m: Mapping[str, YNode], pools: Mapping[str, Pool]
    ) -> tuple[str | None, str | None]:
        """The number's (source, pool): a source given directly, or taken from its pool."""
        source = optional(m, "source", lambda n: self._ref(n, "sources", "source"), None)
        if "pool" not in m:
            if "source" not in m:
                node.error("missing required field 'source' (or 'pool')", line=node.entry_line)
            return source, None
        pool_name = self._ref(m["pool"], "pools", "pool")
        pool = pools.get(pool_name or "")
        if pool is None:
            return None, None
        try:
            return source_of_pool(source, pool), pool.name
        except InventoryError as exc:
            m["source"].error(f"{exc}; leave source out")
            return None, None
