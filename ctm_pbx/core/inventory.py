"""Rules of the tracking-number inventory.

The inventory lives in the database. A number is either managed by the CLI or
declared in YAML (``tracking_numbers:``, config-as-code); each number has exactly
one owner, so the two can never disagree silently:

- YAML-declared numbers are synced into the database by ``db migrate``,
  ``numbers sync`` and ``run``; the CLI refuses to change them.
- A number the CLI added cannot also be declared in YAML while it is active:
  the sync reports the conflict and changes nothing.
- A number removed from YAML is released (kept for the call log's history);
  a sync that would release more than ``database.max_release_percent`` of the
  config's numbers is refused unless forced (a wrong config would release them all).
- One number, one role: a tracking number is never a target number (the site's
  own number) nor a receiving number (calls would dial themselves: a loop).
  ``role_clash`` is that rule, for the YAML loader and the CLI alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ctm_pbx.core.model import (
    Config,
    Pool,
    ReceivingNumber,
    SourceKind,
    Target,
    TrackingNumberDecl,
)
from ctm_pbx.core.phone import InvalidNumber, to_e164


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


def source_of_pool(source: str | None, pool: Pool) -> str:
    """A pool implies its source; a source given beside it must be that one. The
    rule of ``tracking_numbers:`` in the YAML and of the CLI alike."""
    if source is not None and source != pool.source:
        raise InventoryError(
            f"pool '{pool.name}' belongs to source '{pool.source}', not '{source}'"
        )
    return pool.source


def resolve_assignment(
    config: Config, *, source: str | None, pool: str | None, route: str | None
) -> Assignment:
    """Check an assignment against the config; a pool implies its source."""
    if pool is not None:
        if pool not in config.pools:
            raise InventoryError(f"unknown pool '{pool}' (known: {_names(config.pools)})")
        source = source_of_pool(source, config.pools[pool])
    if source is not None:
        if source not in config.sources:
            raise InventoryError(f"unknown source '{source}' (known: {_names(config.sources)})")
        if pool is None and config.sources[source].kind is SourceKind.ONSITE:
            # source-level tracking: allowed, one static number for the source
            pass
    if route is not None and route not in config.routes:
        raise InventoryError(f"unknown route '{route}' (known: {_names(config.routes)})")
    return Assignment(source=source, pool=pool, route=route)


@dataclass(frozen=True)
class RoleClash:
    """A number that cannot be a tracking number, because it already has another role."""

    number: str
    role: str  # "target" | "receiving"
    name: str  # the target's or receiving number's name in the config

    def __str__(self) -> str:
        if self.role == "target":
            return (
                f"{self.number} is target number '{self.name}', the site's own number:"
                " every call to it would be credited to this one source"
            )
        return (
            f"{self.number} is receiving number '{self.name}': its route would dial it"
            " back out through the trunk and ring itself (a call loop)"
        )


def role_clash(
    number: str,
    targets: Mapping[str, Target],
    receiving_numbers: Mapping[str, ReceivingNumber],
) -> RoleClash | None:
    """Why ``number`` (E.164) cannot be a tracking number, or None when it can."""
    for target in targets.values():
        if target.number == number:
            return RoleClash(number, "target", target.name)
    for receiving in receiving_numbers.values():
        if receiving.number == number:
            return RoleClash(number, "receiving", receiving.name)
    return None


def check_cli_number(
    config: Config, number: str, *, source: str | None, pool: str | None, route: str | None
) -> Assignment:
    """Every rule a number added or changed with the CLI must meet; ``InventoryError`` if not.

    The same rules as a ``tracking_numbers:`` entry of the YAML: a source or a
    pool, a route, names that exist, and one number, one role.
    """
    clash = role_clash(number, config.targets, config.receiving_numbers)
    if clash is not None:
        raise InventoryError(str(clash))
    if any(decl.number == number for decl in config.tracking_numbers):
        raise InventoryError(
            f"{number} is declared in the config (tracking_numbers):"
            " change it there, not with the CLI"
        )
    if source is None and pool is None:
        raise InventoryError("needs a source or a pool: a tracking number tracks a source")
    assignment = resolve_assignment(config, source=source, pool=pool, route=route)
    if assignment.route is None:
        raise InventoryError("needs a route")
    return assignment


def check_rows(
    config: Config, rows: list[tuple[int, Mapping[str, str]]]
) -> tuple[list[NumberRecord], list[str]]:
    """Rows of numbers to add (``numbers import``: (line, column -> value)): the records,
    and the problems (``  line N: …``, in line order). Each row meets the rules of
    ``check_cli_number``; a number may be listed once."""
    records: list[NumberRecord] = []
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for line, fields in rows:
        try:
            num = to_e164(fields.get("number", ""), config.tracking.default_country)
            if num in seen:
                raise InventoryError(f"{num} already on line {seen[num]}")
            seen[num] = line
            a = check_cli_number(
                config,
                num,
                source=fields.get("source") or None,
                pool=fields.get("pool") or None,
                route=fields.get("route") or None,
            )
            records.append(NumberRecord(num, a.source, a.pool, a.route, fields.get("label", "")))
        except (InvalidNumber, InventoryError) as exc:
            problems.append((line, f"  line {line}: {exc}"))
    return records, [text for _, text in sorted(problems, key=lambda p: p[0])]


def cli_number_problems(config: Config, records: Mapping[str, NumberRecord]) -> list[str]:
    """What is wrong with the active CLI-added numbers of the inventory under ``config``.

    ``config check`` reports these: a route renamed in the YAML, a number that
    became a receiving number, a pool moved to another source.
    """
    problems = []
    for rec in records.values():
        if rec.managed_by != "cli" or rec.status != "active":
            continue
        try:
            check_cli_number(config, rec.number, source=rec.source, pool=rec.pool, route=rec.route)
        except InventoryError as exc:
            problems.append(f"{rec.number} (added with the CLI): {exc}")
    return problems


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


def release_refusal(
    plan: SyncPlan, existing: Mapping[str, NumberRecord], max_percent: int
) -> str | None:
    """Why ``plan`` releases too many numbers to apply unforced, or None when it may.

    The share is of the config's numbers active in the inventory now: a config
    that declares none of them (a wrong ``--config``) would release 100%.
    """
    if not plan.release:
        return None
    active = sum(1 for r in existing.values() if r.managed_by == "config" and r.status == "active")
    percent = 100 * len(plan.release) / max(active, 1)
    if percent <= max_percent:
        return None
    return (
        f"the config no longer declares {len(plan.release)} of the {active} numbers it "
        f"declared ({percent:.0f}%, more than database.max_release_percent: {max_percent}%): "
        f"{', '.join(plan.release)}; is this the right config? "
        "Give --force to release them (calls to them are no longer routed)"
    )


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
