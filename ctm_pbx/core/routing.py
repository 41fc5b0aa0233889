"""Routing decisions: which receiving numbers ring, in which steps.

A route becomes a list of ``Step``s: one step rings one or several receiving
numbers together for ``timeout`` seconds. ``single`` is one step of one number,
``simultaneous`` one step of all numbers, ``sequential`` one step per number.
Round robin remembers where it stopped through ``RouteMemory`` (smooth weighted
round robin, as nginx balances upstreams), which the caller persists.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctm_pbx.core.model import (
    Config,
    Fallback,
    FallbackKind,
    ReceivingNumber,
    Route,
    RouteOrder,
    RouteType,
    SequentialRoute,
)

DEFAULT_DIAL = "PJSIP/{number}@carrier"


class RoutingError(ValueError):
    """A route that cannot be run (e.g. it was removed from the config)."""


@dataclass(frozen=True)
class Ring:
    """One receiving number in a step."""

    name: str  # receiving number name ("fallback:+1…" for a fallback number)
    number: str
    dial_string: str


@dataclass(frozen=True)
class Step:
    route: str
    rings: tuple[Ring, ...]
    timeout: int
    options: str = ""  # Dial() options, e.g. "r" (ringback for an answered caller)

    def dial_args(self) -> str:
        """The arguments of Asterisk's Dial(): ``tech/a&tech/b,timeout[,options]``."""
        args = "&".join(r.dial_string for r in self.rings) + f",{self.timeout}"
        return f"{args},{self.options}" if self.options else args


@dataclass(frozen=True)
class RouteMemory:
    """Smooth weighted round-robin counters of one route, by receiving number."""

    current: tuple[tuple[str, int], ...] = ()

    def as_dict(self) -> dict[str, int]:
        return dict(self.current)

    @classmethod
    def from_dict(cls, data: dict[str, int]) -> RouteMemory:
        return cls(tuple(sorted((str(k), int(v)) for k, v in data.items())))


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    memory: RouteMemory | None = None  # new round-robin memory to persist, if it changed


def ring_for(rn: ReceivingNumber) -> Ring:
    return Ring(name=rn.name, number=rn.number, dial_string=rn.dial_string)


def plan_route(route: Route, config: Config, memory: RouteMemory | None = None) -> Plan:
    """The steps a route rings, and its new round-robin memory."""
    rings = [ring_for(_receiving(config, t.receiving_number)) for t in route.targets]
    if route.type in (RouteType.SINGLE, RouteType.SIMULTANEOUS):
        return Plan((Step(route.name, tuple(rings), route.ring_timeout),))
    new_memory = None
    robin = isinstance(route, SequentialRoute) and route.order is RouteOrder.ROUND_ROBIN
    if robin and len(rings) > 1:
        weights = [(t.receiving_number, t.weight) for t in route.targets]
        first, new_memory = pick_weighted(weights, memory or RouteMemory())
        rings = rings[first:] + rings[:first]
    steps = tuple(Step(route.name, (r,), route.ring_timeout) for r in rings)
    return Plan(steps, new_memory)


def pick_weighted(weights: list[tuple[str, int]], memory: RouteMemory) -> tuple[int, RouteMemory]:
    """Smooth weighted round robin: the index to start at and the new memory.

    Each pick adds every weight to its counter, takes the largest counter and
    subtracts the total from it. Equal weights rotate one by one; weights 3:1
    start at the heavier number three times in four, spread out.
    """
    current = memory.as_dict()
    total = sum(w for _, w in weights)
    best, best_value = 0, None
    new = {}
    for i, (name, weight) in enumerate(weights):
        value = current.get(name, 0) + weight
        new[name] = value
        if best_value is None or value > best_value:
            best, best_value = i, value
    new[weights[best][0]] -= total
    return best, RouteMemory.from_dict(new)


@dataclass(frozen=True)
class FallbackAction:
    """What a route's fallback does once its steps are exhausted."""

    kind: FallbackKind
    plan: Plan | None = None  # NUMBER: the step that dials it
    route: str | None = None  # ROUTE: the route that runs next


def plan_fallback(
    fallback: Fallback,
    config: Config,
    *,
    from_route: str,
    visited: frozenset[str],
    memory_of: dict[str, RouteMemory] | None = None,
) -> FallbackAction:
    """Turn a route's ``fallback`` into steps or a final outcome."""
    if fallback.kind is FallbackKind.ROUTE:
        name = fallback.value or ""
        if name in visited:
            raise RoutingError(f"route fallback loop: {from_route} -> {name}")
        route = config.routes.get(name)
        if route is None:
            raise RoutingError(f"route '{from_route}' falls back to unknown route '{name}'")
        return FallbackAction(FallbackKind.ROUTE, None, name)  # the caller selects and plans it
    if fallback.kind is FallbackKind.NUMBER:
        value = fallback.value or ""
        rn = config.receiving_numbers.get(value)
        ring = (
            ring_for(rn)
            if rn
            else Ring(
                name=f"fallback:{value}",
                number=value,
                dial_string=DEFAULT_DIAL.replace("{number}", value),
            )
        )
        route = config.routes[from_route]
        return FallbackAction(
            FallbackKind.NUMBER, Plan((Step(from_route, (ring,), route.ring_timeout),))
        )
    return FallbackAction(fallback.kind)


def _receiving(config: Config, name: str) -> ReceivingNumber:
    try:
        return config.receiving_numbers[name]
    except KeyError:
        raise RoutingError(f"unknown receiving number '{name}'") from None
