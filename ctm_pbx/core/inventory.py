"""Rules of the tracking-number inventory.

The inventory lives in the database. A number is either managed by the CLI or
declared in YAML (``tracking_numbers:``, config-as-code); each number has exactly
one owner, so the two can never disagree silently:

- YAML-declared numbers are synced into the database by ``db migrate``,
  ``numbers sync`` and ``run``; the CLI refuses to change them.
- A number the CLI added cannot also be declared in YAML while it is active:
  the sync reports the conflict and changes nothing.
- A number removed from YAML is released (kept for the call log's history).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ctm_pbx.core.model import Config, SourceKind, TrackingNumberDecl


class InventoryError(ValueError):
    """An inventory change that the rules refuse."""


@dataclass(frozen=True)
class NumberRecord:
    number: str
    source: str | None
    pool: str | None
    route: str | None
    label: str = ""
    status: str = "active"
    managed_by: str = "cli"
    added_at: str = ""
    updated_at: str = ""
    released_at: str | None = None


@dataclass(frozen=True)
class Assignment:
    source: str | None
    pool: str | None
    route: str | None


def resolve_assignment(
    config: Config, *, source: str | None, pool: str | None, route: str | None
) -> Assignment:
    """Check an assignment against the config; a pool implies its source."""
    if pool is not None:
        if pool not in config.pools:
            raise InventoryError(f"unknown pool '{pool}' (known: {_names(config.pools)})")
        pool_source = config.pools[pool].source
        if source is not None and source != pool_source:
            raise InventoryError(f"pool '{pool}' belongs to source '{pool_source}', not '{source}'")
        source = pool_source
    if source is not None:
        if source not in config.sources:
            raise InventoryError(f"unknown source '{source}' (known: {_names(config.sources)})")
        if pool is None and config.sources[source].kind is SourceKind.ONSITE:
            # source-level tracking: allowed, one static number for the source
            pass
    if route is not None and route not in config.routes:
        raise InventoryError(f"unknown route '{route}' (known: {_names(config.routes)})")
    return Assignment(source=source, pool=pool, route=route)


@dataclass
class SyncPlan:
    """What syncing the YAML declarations into the inventory would do."""

    insert: list[TrackingNumberDecl] = field(default_factory=list)
    update: list[TrackingNumberDecl] = field(default_factory=list)
    release: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return len(self.insert) + len(self.update) + len(self.release)


def plan_config_sync(
    decls: tuple[TrackingNumberDecl, ...], existing: dict[str, NumberRecord]
) -> SyncPlan:
    """Compare YAML declarations with the inventory (``existing`` keyed by number)."""
    plan = SyncPlan()
    declared = set()
    for decl in decls:
        declared.add(decl.number)
        rec = existing.get(decl.number)
        if rec is None:
            plan.insert.append(decl)
        elif rec.managed_by == "cli" and rec.status == "active":
            plan.conflicts.append(
                f"{decl.number} is declared in the config but was added with the CLI; "
                f"release it (ctm-pbx numbers release {decl.number}) or remove it from the config"
            )
        elif rec.status != "active" or rec.managed_by != "config" or _differs(decl, rec):
            plan.update.append(decl)
    for rec in existing.values():
        if rec.managed_by == "config" and rec.status == "active" and rec.number not in declared:
            plan.release.append(rec.number)
    return plan


def _differs(decl: TrackingNumberDecl, rec: NumberRecord) -> bool:
    return (decl.source, decl.pool, decl.route, decl.label) != (
        rec.source,
        rec.pool,
        rec.route,
        rec.label,
    )


def _names(d: dict) -> str:
    return ", ".join(sorted(d)) or "none"
