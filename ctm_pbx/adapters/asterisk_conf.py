"""Asterisk configuration that ctm-pbx derives from its own: the queues of queue routes.

``ctm-pbx asterisk queues`` writes it; Asterisk's queues.conf includes it
(``#tryinclude queues_ctm.conf``); ``queue reload all`` (or ``core reload``)
picks up changes.
"""

from __future__ import annotations

from ctm_pbx.core.model import Config, QueueRoute, QueueStrategy

HEADER = """\
; Written by `ctm-pbx asterisk queues` from the ctm-pbx configuration: do not edit,
; change the queue routes in config.yaml and write this file again.
"""


def render_queues(config: Config) -> str:
    """One [ctm-<route>] queue per queue route; its agents are static members."""
    parts = [HEADER]
    for route in sorted(config.routes.values(), key=lambda r: r.name):
        if not isinstance(route, QueueRoute):
            continue
        q = route.queue
        lines = [
            f"[{route.queue_name}]",
            f"; {route.label or route.name}",
            f"strategy = {q.strategy.value}",
            f"timeout = {route.ring_timeout}",  # each agent rings this long
            "retry = 1",  # then the next agent, a second later
            f"wrapuptime = {q.wrapup}",
            f"maxlen = {q.max_length}",
            f"musicclass = {q.music}",
            "joinempty = yes",  # callers wait for agents to come back (until max_wait)
            "leavewhenempty = no",
            # an agent on a call is not rung (unless the agent is a line taking many calls)
            f"ringinuse = {'yes' if q.ring_in_use else 'no'}",
            "setinterfacevar = yes",  # MEMBERNAME etc. on the caller: who answered
            "setqueueentryvar = yes",  # QEHOLDTIME, QEORIGINALPOS: wait and position
            "autofill = yes",
            "timeoutpriority = conf",  # max_wait is Queue()'s timeout; ring timeouts stay
        ]
        if q.announce_every:
            lines += [
                f"announce-frequency = {q.announce_every}",
                "announce-position = yes",
                "announce-holdtime = once",
            ]
            if q.periodic_prompt:
                lines += [
                    f"periodic-announce = {q.periodic_prompt}",
                    f"periodic-announce-frequency = {q.announce_every}",
                ]
        for target in route.targets:
            rn = config.receiving_numbers[target.receiving_number]
            penalty = target.weight if q.strategy is QueueStrategy.WRANDOM else 0
            member = f"member => {rn.dial_string},{penalty},{rn.name}"
            if "@" in rn.dial_string:
                # a number dialled through a trunk has no device state of its own
                # (PJSIP/+1...@carrier reads "Invalid" and is never rung): give it a
                # custom one, "Unknown" until set, which app_queue treats as free
                member += f",Custom:ctm-{rn.name}"
            lines.append(member)
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)
