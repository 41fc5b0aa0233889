"""AGI mode: a whole route decided at once, for the admin's dialplan to run.

In ARI mode ctm-pbx decides each leg as the previous one returns. In AGI mode
the dialplan asks once (FastAGI) and runs ``Dial()`` itself, so the route walk
(``route_walk``: the same rules as ARI mode) is unrolled here, assuming each step
fails, into numbered ``Dial()`` steps and a final ``busy``/``hangup``. Pure: the
round-robin memory goes in and the new memory comes out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ctm_pbx.core.call.path import PathEntry
from ctm_pbx.core.call.route_walk import Ask, Finish, RouteWalk
from ctm_pbx.core.geo import Location
from ctm_pbx.core.model import Config, FallbackKind, NumberInfo, Route
from ctm_pbx.core.routing import RouteMemory, RoutingError, Step


class AgiStatus:
    """``CTM_STATUS``: whether the dialplan got steps to dial."""

    OK = "ok"
    UNKNOWN_NUMBER = "unknown_number"
    NO_ROUTE = "no_route"
    NEEDS_ARI = "needs_ari"
    ERROR = "error"


@dataclass(frozen=True)
class AgiPlan:
    status: str
    reason: str = ""
    route: str | None = None
    route_type: str | None = None
    steps: tuple[Step, ...] = ()
    end: str = "hangup"  # after the last step: "busy" or "hangup"
    # path entries (fallbacks taken) keyed by the index of the step they lead to
    transitions: tuple[tuple[int, PathEntry], ...] = ()
    memories: dict[str, RouteMemory] = field(default_factory=dict)  # round robin to persist

    @property
    def needs_ari(self) -> bool:
        return self.status == AgiStatus.NEEDS_ARI


def plan_agi_call(
    config: Config,
    number: NumberInfo | None,
    did: str,
    memory_of: dict[str, RouteMemory],
    *,
    now: datetime,
    where: Location | None = None,
) -> AgiPlan:
    """Unroll the number's route and its fallback chain into ``Dial()`` steps.

    Schedules and geo rules are decided now (they need no media); a route that
    needs the caller's input or a queue needs ARI mode.
    """
    if number is None:
        return AgiPlan(AgiStatus.UNKNOWN_NUMBER, f"{did} is not a tracking number")
    if number.route is None:
        return AgiPlan(AgiStatus.NO_ROUTE, f"{number.number} has no route")
    route = config.routes.get(number.route)
    if route is None:
        return AgiPlan(AgiStatus.NO_ROUTE, f"route '{number.route}' is not configured")
    walk = RouteWalk(config, memory_of, where)
    try:
        steps, end, transitions = _unroll(walk, route.name, now)
    except NeedsAri as exc:
        return AgiPlan(
            AgiStatus.NEEDS_ARI,
            str(exc),
            route=exc.route.name,
            route_type=exc.route.type.value,
        )
    except RoutingError as exc:
        return AgiPlan(AgiStatus.ERROR, str(exc), route=route.name, route_type=route.type.value)
    return AgiPlan(
        AgiStatus.OK,
        route=route.name,
        route_type=route.type.value,
        steps=tuple(steps),
        end=end,
        transitions=tuple(transitions),
        memories=walk.memories,
    )


class NeedsAri(RoutingError):
    def __init__(self, route: Route, what: str | None = None) -> None:
        what = what or route.type.value
        super().__init__(f"route '{route.name}' ({what}) needs ARI mode")
        self.route = route


def _unroll(
    walk: RouteWalk, name: str, now: datetime
) -> tuple[list[Step], str, list[tuple[int, PathEntry]]]:
    """The walk from route ``name``, each step assumed to fail: the steps, the end
    (``busy``/``hangup``) and the path entries keyed by the step they lead to."""
    steps: list[Step] = []
    transitions: list[tuple[int, PathEntry]] = []
    step = walk.enter(name, now)
    while True:
        transitions += [(len(steps), entry) for entry in walk.path]
        walk.path.clear()
        if isinstance(step, Ask):
            raise NeedsAri(step.route)
        if isinstance(step, Finish):
            if step.kind is FallbackKind.VOICEMAIL:
                raise NeedsAri(walk.config.routes[step.route or name], "voicemail")
            return steps, step.kind.value, transitions
        steps.extend(step.plan.steps)
        if step.last_resort:  # a number fallback: after it, hang up
            return steps, "hangup", transitions
        step = walk.fallback(step.route, now)


def channel_variables(
    plan: AgiPlan,
    *,
    call_id: int | None,
    source: str | None,
    source_label: str = "",
    visitor_id: str | None = None,
    confidence: float | None = None,
) -> list[tuple[str, str]]:
    """The ``CTM_*`` variables set on the channel (see dialplan/ctm-pbx-agi.conf)."""
    out = [
        ("CTM_CALL_ID", "" if call_id is None else str(call_id)),
        ("CTM_SOURCE", source or ""),
        ("CTM_SOURCE_LABEL", source_label),
        ("CTM_VISITOR_ID", visitor_id or ""),
        ("CTM_CONFIDENCE", "" if confidence is None else f"{confidence:g}"),
        ("CTM_ROUTE", plan.route or ""),
        ("CTM_ROUTE_TYPE", plan.route_type or ""),
        ("CTM_NEEDS_ARI", "1" if plan.needs_ari else "0"),
        ("CTM_DIAL", plan.steps[0].dial_args() if plan.steps else ""),
        ("CTM_DIAL_STEPS", str(len(plan.steps))),
    ]
    out += [(f"CTM_DIAL_{i}", step.dial_args()) for i, step in enumerate(plan.steps, 1)]
    out += [("CTM_DIAL_END", plan.end), ("CTM_STATUS", plan.status)]
    return out
