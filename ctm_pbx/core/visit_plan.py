"""What a website visit needs of the config, built once per config (and on reload).

A visit's source is resolved through the source index; the numbers it may be shown
come from that source's pools only (a pool per target, or a general pool), however
many sources, pools and targets the config has. Pure: the config in, the plan out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ctm_pbx.core.model import Config, Pool, Source, SourceKind
from ctm_pbx.core.source_index import SourceIndex
from ctm_pbx.core.sources import SourceDecision, VisitFacts, parse_visit, resolve_source

Page = tuple[VisitFacts, SourceDecision]  # a page view's facts and the source they come from


@dataclass(frozen=True)
class VisitPlan:
    """What a visit needs of the config, built once per config (and reload): the source
    index, and for each on-site source its pools and the pool (or None: the source's
    own number) of each target. A visit then touches only its source's pools, however
    many sources, pools and targets the config has."""

    sources: Mapping[str, Source]
    index: SourceIndex | None  # None: the linear scan decides (``resolve_source``)
    pools: dict[str, tuple[Pool, ...]]  # on-site source -> its pools
    targets: dict[str, tuple[tuple[str, Pool | None], ...]]  # -> (target E.164, its pool)

    @classmethod
    def of(cls, config: Config, index: SourceIndex | None = None) -> VisitPlan:
        onsite = {n for n, s in config.sources.items() if s.kind is SourceKind.ONSITE}
        pools: dict[str, list[Pool]] = {n: [] for n in onsite}
        for pool in config.pools.values():
            if pool.source in pools:
                pools[pool.source].append(pool)
        return cls(
            config.sources,
            index,
            {n: tuple(p) for n, p in pools.items()},
            {
                n: tuple((t.number, pool_for(p, t.name)) for t in config.targets.values())
                for n, p in pools.items()
            },
        )

    def read_page(self, landing_url: str, referrer: str | None) -> Page:
        """The page view's facts and the source they come from."""
        facts = parse_visit(landing_url, referrer)
        if self.index is None:
            return facts, resolve_source(self.sources, facts)
        return facts, self.index.resolve(facts)


def pool_for(pools: list[Pool] | tuple[Pool, ...], target: str) -> Pool | None:
    """The pool that serves ``target``: the one made for it, else a general pool."""
    exact = [p for p in pools if p.target == target]
    if exact:
        return exact[0]
    general = [p for p in pools if p.target is None]
    return general[0] if general else None
