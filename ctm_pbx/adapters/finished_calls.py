"""One structured log line per finished call, in ARI and in AGI mode.

The record's ``fields`` (id, mode, DID, source, route, outcome, ring and talk
seconds, attribution confidence) become logfmt pairs after the message
(``edges/logs.py``): ``msg="call finished" id=12 mode=ari did=+13125550142 ...``,
what a log shipper indexes. It names no caller: the caller's number is personal
data and stays in the database. The handlers also hand the summary to
``on_finished`` (the daemon's metrics count it there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

from ctm_pbx.core.call.actions import FinishCall, StartCall

log = logging.getLogger(__name__)

FinishedHook = Callable[["FinishedCall"], None]


@dataclass(frozen=True)
class FinishedCall:
    id: int | None  # the call row's id (None: its row was not written)
    mode: str  # "ari" or "agi"
    did: str | None  # the tracking number called
    source: str | None
    route: str | None
    outcome: str
    ring_s: float
    talk_s: float
    confidence: float | None  # of the call's attribution to a visitor (None: not attributed)

    @classmethod
    def of(
        cls,
        mode: str,
        call_id: int | None,
        start: StartCall | None,
        finish: FinishCall,
        confidence: float | None,
        route: str | None = None,
    ) -> FinishedCall:
        """From the call's start (None: resumed after a restart) and finish actions."""
        return cls(
            id=call_id,
            mode=mode,
            did=start.tracking_number if start else None,
            source=start.source if start else None,
            route=(start.route if start else None) or route,
            outcome=str(finish.outcome),
            ring_s=round(finish.ring_seconds, 3),
            talk_s=round(finish.talk_seconds, 3),
            confidence=confidence,
        )


def report_finished(call: FinishedCall, hook: FinishedHook | None) -> None:
    """Log the call's line and hand it to ``hook``; never raises (the call path)."""
    log.info("call finished", extra={"fields": asdict(call)})
    if hook is not None:
        try:
            hook(call)
        except Exception:
            log.exception("finished-call hook failed")
