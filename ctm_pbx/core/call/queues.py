"""Queue routes: the caller waits in Asterisk's ``Queue()`` for the next free agent.

What to ask ``Queue()`` for (priority by source, the longest wait, whisper and
recording), and what its result means for each agent of the route.
"""

from __future__ import annotations

from ctm_pbx.core.call.actions import EnterQueue, RingResult
from ctm_pbx.core.call.events import QueueResult
from ctm_pbx.core.model import Config, QueueRoute
from ctm_pbx.core.routing import Ring, Step, ring_for

# QUEUESTATUS values that mean nobody could take the call at all
_NOBODY = ("FULL", "JOINEMPTY", "JOINUNAVAIL")


def enter(route: QueueRoute, config: Config, source: str | None) -> tuple[Step, EnterQueue]:
    """The queue as a step (its agents ring together) and the ``Queue()`` to enter."""
    q = route.queue
    rings = tuple(ring_for(config.receiving_numbers[t.receiving_number]) for t in route.targets)
    enter = EnterQueue(
        route.queue_name, q.priority(source), q.max_wait, route.whisper_for(source), route.record
    )
    return Step(route.name, rings, route.ring_timeout), enter


def gave_up_result(res: QueueResult) -> str:
    """Each agent's result when ``Queue()`` returned without one (then the fallback runs)."""
    return "busy" if res.status in _NOBODY else "no_answer"


def winner(step: Step, res: QueueResult) -> Ring | None:
    """The agent who answered (MEMBERNAME), also one not listed in the route."""
    if not res.agent:
        return None
    listed = next((r for r in step.rings if r.name == res.agent), None)
    return listed or Ring(name=res.agent, number="", dial_string="")


def results(step: Step, won: Ring | None, each: str) -> tuple[RingResult, ...]:
    """Each agent's result: the winner answered, the others were cancelled; with no
    winner, all ``each``."""
    out = tuple(
        RingResult(r.name, "answered" if r is won else ("cancelled" if won else each))
        for r in step.rings
    )
    if won is not None and won not in step.rings:
        out += (RingResult(won.name, "answered"),)
    return out
