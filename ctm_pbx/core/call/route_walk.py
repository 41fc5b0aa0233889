"""Where a call goes next: the one place for route selection and fallback chains.

A call enters its tracking number's route; schedules and geo rules may hand it to
another (``route_select``). A route that rings gives its steps; when they are spent,
its ``fallback`` runs: another route, a number (the last resort: after it, hang up),
voicemail, busy or hang up. ARI mode walks this as each step returns; AGI mode
unrolls the whole walk at once, assuming each step fails. Both see the same path
entries and the same errors (``RoutingError``: a loop, an unknown route).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ctm_pbx.core.call.path import FallbackEntry, PathEntry
from ctm_pbx.core.clock import iso
from ctm_pbx.core.geo import Location
from ctm_pbx.core.model import Config, Fallback, FallbackKind, GeoRoute, IvrRoute, QueueRoute
from ctm_pbx.core.route_select import select_route
from ctm_pbx.core.routing import Plan, RouteMemory, RoutingError, plan_fallback, plan_route


@dataclass(frozen=True)
class Ring:
    """Dial these steps of route ``route``. ``last_resort``: a number handed over to;
    when it fails the call hangs up instead of running ``route``'s fallback."""

    route: str
    plan: Plan
    last_resort: bool = False


@dataclass(frozen=True)
class Ask:
    """The route needs the caller: an ivr menu, a geo route's ZIP prompt, a queue."""

    route: IvrRoute | GeoRoute | QueueRoute


@dataclass(frozen=True)
class Finish:
    """The walk ends: ``busy``/``hangup``, or ``voicemail`` with its greeting."""

    kind: FallbackKind
    greeting: str = ""
    route: str = ""  # the route whose rule ended it


WalkStep = Ring | Ask | Finish


@dataclass
class RouteWalk:
    """One call's walk through its routes. ``path`` collects the entries of the choices
    made (schedule, geo, fallback); ``memories`` the round-robin memories the walk
    advanced (to remember for the next call). ``memory_of`` is the walk's own copy."""

    config: Config
    memory_of: dict[str, RouteMemory] = field(default_factory=dict)
    where: Location | None = None  # the caller's location, for geo routes
    visited: set[str] = field(default_factory=set)
    asked: set[str] = field(default_factory=set)  # geo routes that asked for a ZIP
    path: list[PathEntry] = field(default_factory=list)
    memories: dict[str, RouteMemory] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.memory_of = dict(self.memory_of)

    def enter(self, name: str, now: datetime) -> WalkStep:
        """Run route ``name``, or the route its schedule or geo rules hand over to."""
        sel = select_route(
            self.config,
            name,
            now=now,
            where=self.where,
            visited=frozenset(self.visited),
            asked=frozenset(self.asked),
        )
        self.path.extend(sel.path)
        self.visited |= sel.visited
        if sel.route is None:
            fallback = sel.fallback or Fallback(FallbackKind.HANGUP)
            return self.hand_over(fallback, sel.from_route or name, now)
        route = sel.route
        if isinstance(route, IvrRoute | GeoRoute | QueueRoute):
            return Ask(route)
        plan = plan_route(route, self.config, self.memory_of.get(route.name))
        if plan.memory is not None:
            self.memory_of[route.name] = self.memories[route.name] = plan.memory
        return Ring(route.name, plan)

    def fallback(self, name: str, now: datetime) -> WalkStep:
        """Route ``name``'s steps are spent: its ``fallback``."""
        route = self.config.routes.get(name)
        if route is None:
            raise RoutingError(f"route '{name}' is not configured")
        action = plan_fallback(
            route.fallback, self.config, from_route=name, visited=frozenset(self.visited)
        )
        kind, at = action.kind, iso(now)
        if kind is FallbackKind.ROUTE:
            self.path.append(FallbackEntry(kind.value, name, at, to_route=action.route))
            self.visited.add(action.route or "")
            return self.enter(action.route or "", now)
        if kind is FallbackKind.NUMBER:
            self.path.append(FallbackEntry(kind.value, name, at, to_number=route.fallback.value))
            assert action.plan is not None
            return Ring(name, action.plan, last_resort=True)
        self.path.append(FallbackEntry(kind.value, name, at))
        return Finish(kind, route.fallback.value or "", name)

    def hand_over(
        self, target: Fallback, from_route: str, now: datetime, *, last_resort: bool = True
    ) -> WalkStep:
        """Straight to ``target`` (after hours, no geo match, a menu's choice)."""
        if target.kind is FallbackKind.ROUTE:
            return self.enter(target.value or "", now)
        if target.kind is FallbackKind.NUMBER:
            action = plan_fallback(target, self.config, from_route=from_route, visited=frozenset())
            assert action.plan is not None
            return Ring(from_route, action.plan, last_resort=last_resort)
        return Finish(target.kind, target.value or "", from_route)
