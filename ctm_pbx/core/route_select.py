"""Choosing the route that actually rings: business hours and geo routing.

A tracking number's route may first choose another route: outside its
schedule's hours it hands over to its ``after_hours``; a ``geo`` route hands
over to the route of the first rule the caller's location matches (or its
``default``). Each choice is a path entry of the call. Pure: the time and the
caller's location come in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from ctm_pbx.core.call.path import GeoEntry, ScheduleEntry
from ctm_pbx.core.clock import iso
from ctm_pbx.core.geo import Location, match_rule
from ctm_pbx.core.model import Config, Fallback, FallbackKind, GeoRoute, Route
from ctm_pbx.core.routing import RoutingError
from ctm_pbx.core.schedules import is_open


@dataclass(frozen=True)
class Selection:
    """Either a route to run, or a final fallback (number, busy, hangup) of ``from_route``."""

    route: Route | None
    fallback: Fallback | None = None
    from_route: str | None = None
    path: tuple[ScheduleEntry | GeoEntry, ...] = ()
    visited: frozenset[str] = field(default_factory=frozenset)


def select_route(
    config: Config,
    name: str,
    *,
    now: datetime,
    where: Location | None,
    visited: frozenset[str] = frozenset(),
    asked: frozenset[str] = frozenset(),
) -> Selection:
    """Follow schedules and geo rules from route ``name`` to the route that runs.

    The route returned dials, or needs the caller's input (an ivr menu, a geo
    route that asks for a ZIP code; ``asked``: geo routes that asked already).
    """
    path: list[ScheduleEntry | GeoEntry] = []
    seen = set(visited)
    while True:
        route = config.routes.get(name)
        if route is None:
            raise RoutingError(f"route '{name}' is not configured")
        if name in seen and path:
            raise RoutingError(f"route loop: {' -> '.join([*_chain(path), name])}")
        seen.add(name)
        handover = _handover(config, route, now, where, asked)
        if handover is None:
            return Selection(route, path=tuple(path), visited=frozenset(seen))
        make, to = handover
        if to.kind is FallbackKind.ROUTE:
            path.append(make(name, iso(now), to.value, None))
            name = to.value or ""
            continue
        told = to.kind.value if to.value is None else f"{to.kind.value}:{to.value}"
        path.append(make(name, iso(now), None, told))
        return Selection(None, to, name, tuple(path), frozenset(seen))


# the path entry of a handover, given (from_route, at, to_route, to)
Entry = Callable[[str, str, str | None, str | None], ScheduleEntry | GeoEntry]


def _handover(
    config: Config, route: Route, now: datetime, where: Location | None, asked: frozenset[str]
) -> tuple[Entry, Fallback] | None:
    if route.schedule is not None:
        schedule = config.schedules[route.schedule]
        if not is_open(schedule, now):
            closed = partial(ScheduleEntry, schedule.name, False)
            return closed, route.after_hours or Fallback(FallbackKind.HANGUP)
    if isinstance(route, GeoRoute):
        if route.ask_zip is not None and route.name not in asked and not (where and where.zip):
            return None  # the caller is asked for a ZIP code first
        rule = match_rule(route.geo_rules, where)
        seen = _where(where)
        if rule is not None:
            return partial(GeoEntry, seen), Fallback(FallbackKind.ROUTE, rule.target)
        seen["matched"] = False
        return partial(GeoEntry, seen), route.default or Fallback(FallbackKind.HANGUP)
    return None


def _where(where: Location | None) -> dict:
    if where is None:
        return {"known": False}
    out = {"region": where.region, "area_code": where.area_code, "from": where.source}
    if where.zip:
        out["zip"] = where.zip
    return out


def _chain(path: list[ScheduleEntry | GeoEntry]) -> list[str]:
    return [p.from_route for p in path]
