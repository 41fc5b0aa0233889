"""Erasure: a person's data removed (or made anonymous) everywhere in the store.

``--visitor ID`` (a website visitor): their visitor row, visits (addresses, user
agents, URLs, Google Analytics ids) and leases are deleted; calls attributed to
them keep their source, route and outcome (what the business counts) but lose the
link to the visitor and what came from the visit (landing page, referrer, UTM
values, click ids, page count); other calls' lists of candidates lose the entry.

``--caller NUMBER``: their calls keep the row (when, which tracking number, source,
route, outcome, durations: the counts reports show) but lose the caller's number,
name and location, the keys pressed (a ZIP code), the link to their earlier call,
the dashboard comment (free text a person wrote about the call, likely naming
them; the tags stay: they are categories) and the recording and voicemail files,
which are deleted. The outbox keeps no copy: the stored bodies of both kinds of
calls' webhook and GA4 events are dropped (one still to send is built again from
the call as it is after the erasure). A caller's calls linked to a website visitor name that
visitor in the report, to be forgotten too (``--visitor``) if it was them.

Each is one transaction (a person's rows are few; the search of the candidate
lists reads outside it). Files are deleted first: a failure leaves a reference to
a missing file, never a file nobody knows of.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import sqlite_utils

from ctm_pbx.adapters.store import outbox
from ctm_pbx.adapters.store.db import atomic
from ctm_pbx.adapters.store.retention import delete_file

ERASED = "erased on request"
# the columns of a call that came from the visitor's visit (see call_attribution)
_VISIT_COLUMNS = (
    "visitor_id = NULL, visit_id = NULL, landing_url = NULL, referrer = NULL,"
    " utm_source = NULL, utm_medium = NULL, utm_campaign = NULL, utm_term = NULL,"
    " utm_content = NULL, click_ids_json = '{}', pages = NULL"
)
_CALLER_COLUMNS = (
    "caller_number = NULL, caller_name = NULL, caller_place = NULL, caller_region = NULL,"
    " caller_area_code = NULL, caller_zip = NULL, caller_county = NULL,"
    " caller_location_source = NULL, ivr_digits = NULL, previous_call_id = NULL,"
    " comment = '', recording_path = NULL, voicemail_path = NULL"
)


@dataclass
class Erasure:
    """What ``forget_*`` did, for the CLI to print."""

    visitors: int = 0
    visits: int = 0
    leases: int = 0
    calls: list[int] = field(default_factory=list)  # calls made anonymous (--caller)
    unlinked: list[int] = field(default_factory=list)  # calls no longer linked to the visitor
    candidate_lists: int = 0  # other calls' candidate lists the visitor was taken out of
    files: int = 0  # recordings and voicemail messages deleted
    event_bodies: int = 0  # stored webhook/GA4 bodies of their calls, dropped
    linked_visitors: list[str] = field(default_factory=list)  # --caller: visitors of the calls
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = []
        if self.visitors or self.visits or self.leases:
            out.append(
                f"deleted {self.visitors} visitor(s), {self.visits} visit(s),"
                f" {self.leases} lease(s)"
            )
        if self.unlinked:
            out.append(
                f"took the visit's data off {len(self.unlinked)} call(s) attributed to them:"
                f" {_ids(self.unlinked)}"
            )
        if self.calls:
            out.append(f"made {len(self.calls)} call(s) anonymous: {_ids(self.calls)}")
        if self.candidate_lists:
            out.append(f"removed from the attribution candidates of {self.candidate_lists} call(s)")
        if self.files:
            out.append(f"deleted {self.files} recording/voicemail file(s)")
        if self.event_bodies:
            out.append(f"dropped the stored bodies of {self.event_bodies} outbox event(s)")
        for visitor in self.linked_visitors:
            out.append(
                f"the calls were attributed to website visitor {visitor}: if that was the"
                f" same person, also run: ctm-pbx privacy forget --visitor {visitor}"
            )
        return out or ["nothing stored for them"]


def _ids(ids: list[int]) -> str:
    more = f" and {len(ids) - 20} more" if len(ids) > 20 else ""
    return ", ".join(str(i) for i in ids[:20]) + more


def forget_visitor(db: sqlite_utils.Database, visitor_id: str) -> Erasure:
    """Delete the visitor's visits, leases and row; unlink their calls (see module)."""
    out = Erasure()
    conn = db.conn
    needle = json.dumps(visitor_id)  # as it appears in a candidates list
    listed = [
        row[0]
        for row in conn.execute(
            "SELECT id FROM calls WHERE instr(attribution_candidates_json, ?) > 0", (needle,)
        )
    ]
    with atomic(db, "forget"):
        out.unlinked = [
            r[0] for r in conn.execute("SELECT id FROM calls WHERE visitor_id = ?", (visitor_id,))
        ]
        conn.execute(
            f"UPDATE calls SET {_VISIT_COLUMNS}, attribution_reason = ? WHERE visitor_id = ?",
            (f"visitor {ERASED}", visitor_id),
        )
        for call_id in listed:
            row = conn.execute(
                "SELECT attribution_candidates_json FROM calls WHERE id = ?", (call_id,)
            ).fetchone()
            if row is None:
                continue
            kept = [c for c in json.loads(row[0] or "[]") if c.get("visitor_id") != visitor_id]
            conn.execute(
                "UPDATE calls SET attribution_candidates_json = ? WHERE id = ?",
                (json.dumps(kept), call_id),
            )
            out.candidate_lists += call_id not in out.unlinked
        out.leases = conn.execute("DELETE FROM leases WHERE visitor_id = ?", (visitor_id,)).rowcount
        out.visits = conn.execute("DELETE FROM visits WHERE visitor_id = ?", (visitor_id,)).rowcount
        out.visitors = conn.execute("DELETE FROM visitors WHERE id = ?", (visitor_id,)).rowcount
        out.event_bodies = outbox.forget_bodies(db, sorted({*out.unlinked, *listed}))
    return out


def forget_caller(db: sqlite_utils.Database, numbers: list[str], readable_dir: str) -> Erasure:
    """Make the calls from any of ``numbers`` (as stored: E.164, or as the caller ID
    came when it was not a number) anonymous and delete their files (see module)."""
    out = Erasure()
    conn = db.conn
    rows = conn.execute(
        "SELECT id, visitor_id, recording_path, voicemail_path FROM calls"
        " WHERE caller_number IN (SELECT value FROM json_each(?)) ORDER BY id",
        (json.dumps(sorted(set(numbers))),),
    ).fetchall()
    if not rows:
        return out
    ids = []
    for call_id, visitor_id, *paths in rows:
        kept = False
        for stored in paths:
            if not stored:
                continue
            result = delete_file(stored, readable_dir)
            if result.deleted:
                out.files += not result.missing
            else:
                kept = True
                out.problems.append(f"call {call_id}: cannot delete {stored}")
        if visitor_id and visitor_id not in out.linked_visitors:
            out.linked_visitors.append(visitor_id)
        if kept:  # its file stays, and so does what says whose it is: run again
            continue
        ids.append(call_id)
    with atomic(db, "forget"):
        conn.execute(
            f"UPDATE calls SET {_CALLER_COLUMNS} WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(ids),),
        )
        out.event_bodies = outbox.forget_bodies(db, ids)
    out.calls = ids
    return out
