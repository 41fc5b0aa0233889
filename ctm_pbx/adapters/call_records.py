"""The call log writes of every transport: a call's actions, as the store records them.

ARI mode, AGI mode and the dialplan's call spool hand their calls' actions here (on
the store's writer thread): ``StartCall`` creates the row and attributes it,
``RememberRoute`` keeps round robin, the step, queue, input and finish actions
complete the row. Moves of the channel (``DialStep``…) are the transports' own.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol

import sqlite_utils

from ctm_pbx.adapters.call_attribution import attribute_call
from ctm_pbx.adapters.store import calls as call_store
from ctm_pbx.adapters.store.db import atomic
from ctm_pbx.adapters.store.route_state import save_route_memory
from ctm_pbx.core.call.actions import (
    Action,
    FinishCall,
    FinishStep,
    RecordInput,
    RecordQueue,
    RememberRoute,
    StartCall,
    StartStep,
)
from ctm_pbx.core.clock import iso
from ctm_pbx.core.model import Config

log = logging.getLogger(__name__)


class Recorded(Protocol):
    """What the recorder needs of a call: its channel, and the row id once it has one."""

    @property
    def channel_id(self) -> str: ...

    @property
    def linkedid(self) -> str | None: ...

    call_id: int | None


def record(
    db: sqlite_utils.Database,
    config: Config,
    call: Recorded,
    actions: list[Action],
    now: datetime,
    *,
    mode: str = "ari",
) -> tuple[str | None, float | None]:
    """Write a batch of a call's actions. Sets ``call.call_id`` when it creates the row
    (for the call's later batches); returns the visitor and confidence the call was
    attributed to (None, None without a ``StartCall`` or a visitor)."""
    attributed: tuple[str | None, float | None] = (None, None)
    for action in actions:
        if isinstance(action, StartCall):
            call_id = call.call_id = call_store.insert_call(
                db,
                action,
                channel_id=call.channel_id,
                linkedid=call.linkedid,
                mode=mode,
                call_id=call.call_id,  # written again after a failed commit: the same id
            )
            try:
                with atomic(db, "attribution"):
                    attributed = attribute_call(db, config, call_id, action, now)
            except Exception:  # the call row matters more than its attribution
                log.exception("call %s: attribution failed", call.channel_id)
        elif isinstance(action, RememberRoute):
            save_route_memory(db, action.route, action.memory, now=iso(now))
        elif call.call_id is None:
            continue  # its row did not stand: nothing to complete
        elif isinstance(action, StartStep):
            call_store.insert_step(db, call.call_id, action)
        elif isinstance(action, FinishStep):
            call_store.finish_step(db, call.call_id, action)
        elif isinstance(action, FinishCall):
            call_store.finish_call(db, call.call_id, action)
        elif isinstance(action, RecordInput):
            call_store.record_input(db, call.call_id, action)
        elif isinstance(action, RecordQueue):
            call_store.record_queue(db, call.call_id, action)
    return attributed
