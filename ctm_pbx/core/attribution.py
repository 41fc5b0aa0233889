"""Which website visitor made a call to a pool number, and how sure we are.

Pure: the store hands over the lease history of the number called.

The confidence is a probability. Each visitor who held the number in the
window is weighted by the rate (per minute) at which a visitor calls at that
moment: ``call_likelihood`` of the time since their last activity, a mixture
of the three kinds of call (during the visit, after leaving, days later).
Beside them stands *someone outside the window*: a visitor who held the
number days ago, or a caller who never visited (the number was copied,
printed, remembered), weighted by how many visitors the number serves a
minute. The probabilities of the candidates and of "someone else" sum to 1.

The parts of the model, and why:

- *during the visit*: only while the page is open, and a page renews every
  minute while visible, so a holder idle for more than ``OPEN_MINUTES`` has
  closed (or hidden) it; a page that said it closed (``Lease.closed_at``, the
  script's beacon) is closed from then on, and its holder is one who left,
  measured from the close; a call within ``DIAL_MINUTES`` of the close still
  counts as of the visit (tapping a ``tel:`` link hides the page too). Of the
  calls made during a visit, ``TAP_SHARE`` are such taps: a page that closed in
  the minute before the call is that much likelier the caller's than one still
  open (pages close at one every ``VISIT_MINUTES``; a tap's close comes within
  ``DIAL_MINUTES`` of its call), and an open page's holder is calling without a tap;
- *after leaving*: a heavy-tailed delay (log-logistic: median 10 minutes,
  12 % after an hour), as people call back, not an exponential;
- *days later*: one to three days after the visit, spread evenly; these
  callers are mostly outside the window, hence the "someone else" weight. Some
  of them called before (``LATE_LINKED_SHARE``) and the caller id links them to
  their visitor (below): a caller id with no such link is less likely one of them.

Evidence that does not depend on the pool multiplies a candidate's weight (a
likelihood ratio; "someone else" keeps a factor of 1):

- a repeat caller: the caller id of an earlier attributed call, whose visitor
  gets ``1 + (REPEAT_FACTOR - 1) * that call's confidence`` (the earlier link is
  right with that probability), inside the window or out of it;
- time zones: the caller's number has a zone (phonenumbers), each visitor's
  browser reported one. ``d``, the hours between them (0, 1, 2, 3 or more), is
  ``ZONE_MATCH[d]`` likely for the caller's own browser, and for anyone else as
  often as among the window's candidates (with ``ZONE_PRIOR`` as a prior worth
  ``ZONE_PRIOR_WEIGHT`` candidates): their ratio is the factor. A local site,
  whose visitors all share one zone, so gets a factor near 1; a national one a
  factor of ~2.4 for the caller's zone and ~0.3 for three zones away.
``bench/attribution_sim.py`` measures how calibrated the result is.
Off-site (fixed) numbers never get here: their source is certain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ctm_pbx.core.clock import parse_iso
from ctm_pbx.core.geo import number_time_zones
from ctm_pbx.core.model import Source, SourceKind
from ctm_pbx.core.pools import Lease

VISIT_SHARE, AFTER_SHARE, LATE_SHARE = 0.70, 0.25, 0.05
VISIT_MINUTES = 6.5  # a visit is open this long (its minute of renewals included), measured
OPEN_MINUTES = 1.5  # a page renews every minute while visible: idle longer = closed
# A page that said it closed this recently may have hidden as its visitor tapped a tel:
# link to call: still a call of the visit.
DIAL_MINUTES = 1.0
TAP_SHARE = 0.5  # of the calls made during the visit, those made by tapping the number
AFTER_MEDIAN_MINUTES = 10.0  # calls after leaving: median delay
AFTER_SHAPE = 1.11  # log-logistic shape: 12 % of after-leave calls come after an hour
LATE_FROM_MINUTES, LATE_TO_MINUTES = 24 * 60, 3 * 24 * 60  # days-later calls: 1 to 3 days
# Callers who never held the number (copied, printed, remembered), per visitor it serves.
UNKNOWN_SHARE = 0.01
# Of days-later callers, those who had called before (their caller id linked to the visitor).
LATE_LINKED_SHARE = 0.4
# How much likelier a repeat caller's earlier visitor is than anyone else (the caller id is
# a person's; another visitor is rarely the same person on another device).
REPEAT_FACTOR = 1000.0
# P(d | the caller): their browser is d hours (0, 1, 2, 3+) from their number's zone. Most
# people browse where their number is from; some moved, travel, or use a VPN.
ZONE_MATCH = (0.80, 0.10, 0.05, 0.05)
# P(d | another visitor) before the window's candidates are counted: a site visited from
# the whole US (people by zone: 47 % Eastern, 29 % Central, 7 % Mountain, 17 % Pacific).
ZONE_PRIOR = (0.34, 0.34, 0.16, 0.16)
ZONE_PRIOR_WEIGHT = 5.0


def after_leave_density(minutes: float) -> float:
    """Log-logistic density (per minute) of a call ``minutes`` after leaving."""
    if minutes <= 0:
        return 0.0
    x = (minutes / AFTER_MEDIAN_MINUTES) ** AFTER_SHAPE
    return AFTER_SHAPE / minutes * x / (1 + x) ** 2


def call_likelihood(
    idle_minutes: float, *, open_page: bool | None = None, dialed: bool = False
) -> float:
    """Rate (per minute, per calling visitor) of a call ``idle_minutes`` after their last activity.

    ``open_page`` (default: idle at most ``OPEN_MINUTES``) says the page was open then;
    ``dialed``: it said it closed within ``DIAL_MINUTES`` before (a tap on the number),
    which a page that is not the caller's does once every ``VISIT_MINUTES``.
    """
    d = max(0.0, idle_minutes)
    if open_page is None:
        open_page = d <= OPEN_MINUTES
    if dialed:
        visit = VISIT_SHARE * TAP_SHARE / DIAL_MINUTES
    else:
        visit = VISIT_SHARE * (1 - TAP_SHARE) / VISIT_MINUTES if open_page else 0.0
    late = LATE_SHARE / (LATE_TO_MINUTES - LATE_FROM_MINUTES)
    late = late if LATE_FROM_MINUTES <= d <= LATE_TO_MINUTES else 0.0
    return visit + AFTER_SHARE * after_leave_density(d) + late


def outside_likelihood(holders: int, window_minutes: float, *, unlinked: bool = False) -> float:
    """Rate of a call from someone who is none of the window's ``holders``.

    The number serves ``holders / window_minutes`` visitors a minute; the share of
    days-later calls that fall beyond the window comes from as many visitors, and
    callers who never visited add ``UNKNOWN_SHARE`` per visitor. ``unlinked``: the
    caller id is known and no earlier call links it to a visitor, so the caller is
    not one of the days-later callers who had called before.
    """
    rate = max(holders, 1) / max(window_minutes, 1.0)
    span = LATE_TO_MINUTES - LATE_FROM_MINUTES
    beyond = min(1.0, max(0.0, (LATE_TO_MINUTES - max(window_minutes, LATE_FROM_MINUTES)) / span))
    late = LATE_SHARE * (1 - LATE_LINKED_SHARE if unlinked else 1.0)
    return rate * (late * beyond + UNKNOWN_SHARE)


@dataclass(frozen=True)
class Candidate:
    visitor_id: str
    visit_id: str | None
    weight: float  # probability that this visitor made the call
    idle_minutes: float  # from their last activity to the call
    active: bool = False  # their lease was active when the call came
    open_page: bool = False  # their page was open (renewing) when the call came
    repeat: bool = False  # the caller's earlier call was attributed to this visitor
    zone_hours: int | None = None  # browser to caller's number's zone, hours (3: 3 or more)


@dataclass(frozen=True)
class Attribution:
    visitor_id: str | None
    visit_id: str | None
    confidence: float  # 0..1: the probability that the call is the best candidate's
    reason: str  # the score explained in words
    candidates: tuple[Candidate, ...] = ()  # the likeliest first, at most MAX_CANDIDATES
    candidate_count: int = 0  # every visitor who held the number in the window
    someone_else: float = 0.0  # probability that the caller is none of the candidates


@dataclass(frozen=True)
class Evidence:
    """What the call tells beside the number: a repeat caller's earlier visitor."""

    repeat_visitor: str | None = None  # visitor of the caller's earlier attributed call
    repeat_visit: str | None = None
    repeat_confidence: float = 0.0  # that call's confidence
    repeat_call_id: int | None = None
    caller_zones: tuple[str, ...] = ()  # the caller's number's time zones (IANA)
    visitor_zones: Mapping[str, str] = field(default_factory=dict)  # visitor -> browser zone
    caller_known: bool = False  # the caller id is one an earlier call could link (not withheld)


def evidence_of(link: RepeatLink | None, caller_number: str | None) -> Evidence:
    """What a call tells beside its number: the caller's earlier attributed call (a
    ``link_repeat_caller`` link) and their number's time zones."""
    known = bool(caller_number and caller_number.startswith("+"))
    zones = number_time_zones(caller_number)
    if link is None or not link.visitor_id:
        return Evidence(caller_zones=zones, caller_known=known)
    return Evidence(
        link.visitor_id, link.visit_id, link.confidence, link.call_id, zones, caller_known=known
    )


@lru_cache(maxsize=4096)
def _offset_hours(zone: str, day: date) -> float | None:
    try:
        at = datetime(day.year, day.month, day.day, 12, tzinfo=ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        return None
    offset = at.utcoffset()
    return offset.total_seconds() / 3600 if offset is not None else None


def zone_hours(browser_zone: str | None, caller_zones: Sequence[str], now: datetime) -> int | None:
    """Hours between a browser's zone and the nearest of the caller's number's zones, on
    ``now``'s day, at most 3 (None: either is unknown)."""
    if not browser_zone or not caller_zones:
        return None
    mine = _offset_hours(browser_zone, now.date())
    theirs = [h for z in caller_zones if (h := _offset_hours(z, now.date())) is not None]
    if mine is None or not theirs:
        return None
    return min(3, round(min(abs(mine - h) for h in theirs)))


def zone_factors(hours: Mapping[str, int]) -> dict[str, float]:
    """Each visitor's time-zone likelihood ratio, from their hours to the caller's zone."""
    counts = [0, 0, 0, 0]
    for d in hours.values():
        counts[d] += 1
    n = sum(counts)
    other = [
        (counts[d] + ZONE_PRIOR_WEIGHT * ZONE_PRIOR[d]) / (n + ZONE_PRIOR_WEIGHT) for d in range(4)
    ]
    return {vid: ZONE_MATCH[d] / other[d] for vid, d in hours.items()}


NOBODY = "no visitor held this number in the window"
# A busy pool number has a hundred holders in a day; past the first few their
# probabilities are noise, so only these are kept (the confidence counts them all).
MAX_CANDIDATES = 10


def attribute(
    number: str,
    now: datetime,
    leases: Iterable[Lease],
    window_minutes: int,
    evidence: Evidence | None = None,
) -> Attribution:
    """Score a call to ``number`` at ``now`` against the number's lease history.

    Candidates are the visitors whose lease overlapped the window
    ``[now - window_minutes, now]``; a visitor with several leases counts once,
    by their most recent activity (activity after ``now`` counts as at ``now``).
    ``evidence`` (a repeat caller) multiplies its visitor's weight, and adds them
    as a candidate when they are outside the window.
    """
    ev = evidence or Evidence()
    since = now - timedelta(minutes=window_minutes)
    latest: dict[str, tuple[datetime, Lease]] = {}  # visitor -> (last activity, its lease)
    active_visitors: set[str] = set()
    open_visitors: set[str] = set()
    dialed: set[str] = set()  # their page closed within DIAL_MINUTES before the call
    for lease in leases:
        if lease.number and lease.number != number:
            continue
        if lease.leased_at > now or lease.expires_at < since:
            continue
        if lease.expires_at > now:
            active_visitors.add(lease.visitor_id)
        # closed: the page said so, and no renewal came after (a tab shown again renews);
        # the holder left at the close (a call within DIAL_MINUTES of it: the tap that
        # hid the page to dial)
        closed = lease.closed and lease.closed_at is not None and lease.closed_at <= now
        if closed and lease.closed_at is not None:
            is_open = (now - lease.closed_at).total_seconds() <= 60 * DIAL_MINUTES
            if is_open:
                dialed.add(lease.visitor_id)
        else:
            is_open = (now - min(lease.last_active_at, now)).total_seconds() <= 60 * OPEN_MINUTES
        if is_open:
            open_visitors.add(lease.visitor_id)
        last = min(lease.left_at() if closed else lease.last_active_at, now)
        seen = latest.get(lease.visitor_id)
        if seen is None or last > seen[0]:
            latest[lease.visitor_id] = (last, lease)

    unlinked = ev.caller_known and not ev.repeat_visitor
    outside = outside_likelihood(len(latest), window_minutes, unlinked=unlinked)
    factor = 1 + (REPEAT_FACTOR - 1) * min(1.0, max(0.0, ev.repeat_confidence))
    hours: dict[str, int] = {}
    for vid in (*latest, *([ev.repeat_visitor] if ev.repeat_visitor else [])):
        d = zone_hours(ev.visitor_zones.get(vid), ev.caller_zones, now)
        if d is not None:
            hours[vid] = d
    zoned = zone_factors(hours)
    scored: list[tuple[float, float, str, str | None, bool]] = []
    for vid, (last, lease) in latest.items():
        idle = (now - last).total_seconds() / 60
        opened = vid in open_visitors
        w = call_likelihood(idle, open_page=opened, dialed=opened and vid in dialed)
        w *= zoned.get(vid, 1.0)
        repeat = vid == ev.repeat_visitor
        scored.append((w * (factor if repeat else 1.0), idle, vid, lease.visit_id, repeat))
    if ev.repeat_visitor and ev.repeat_visitor not in latest:
        # the earlier caller's visitor, outside the window: one of the "someone else"
        w = outside * factor * zoned.get(ev.repeat_visitor, 1.0)
        scored.append((w, -1.0, ev.repeat_visitor, ev.repeat_visit, True))
    if not scored:
        return Attribution(None, None, 0.0, NOBODY, someone_else=1.0)
    total = sum(s[0] for s in scored) + outside
    scored.sort(key=lambda s: (-s[0], s[1], s[2]))
    candidates = tuple(
        Candidate(
            vid,
            visit,
            w / total,
            round(idle, 3),
            vid in active_visitors,
            vid in open_visitors,
            repeat,
            hours.get(vid),
        )
        for w, idle, vid, visit, repeat in scored[:MAX_CANDIDATES]
    )
    att = Attribution(
        candidates[0].visitor_id,
        candidates[0].visit_id,
        candidates[0].weight,
        "",
        candidates,
        len(scored),
        outside / total,
    )
    return replace(att, reason=explain(att, open_visitors))


def explain(att: Attribution, open_visitors: set[str] | frozenset[str] = frozenset()) -> str:
    """The score in words a marketer reads: who else, how long ago, the chance of someone else."""
    if att.visitor_id is None:
        return NOBODY
    best = att.candidates[0]
    parts = []
    others = att.candidate_count - 1
    others_open = len(open_visitors - {best.visitor_id})
    if others <= 0:
        parts.append("the only visitor who had this number")
    else:
        parts.append(
            f"shared with {others} other visitor{'s' if others > 1 else ''}"
            + (f" ({others_open} with the page open)" if others_open else "")
        )
    if best.repeat and best.idle_minutes < 0:
        parts.append("a repeat caller: linked to their earlier call's visitor")
    else:
        if best.repeat:
            parts.append("a repeat caller: their earlier call was this visitor's")
        if best.open_page:
            parts.append("the caller's visitor had the page open")
        else:
            parts.append(f"the caller's visitor left {_ago(best.idle_minutes)} before the call")
    if best.zone_hours == 0:
        parts.append("their browser is in the time zone of the caller's number")
    elif best.zone_hours is not None:
        more = " or more" if best.zone_hours >= 3 else ""
        parts.append(f"their browser is {best.zone_hours} h{more} from the caller's time zone")
    parts.append(f"{_pct(att.someone_else)} chance it is someone else")
    return "; ".join(parts)


def _ago(minutes: float) -> str:
    if minutes < 90:
        m = max(1, round(minutes))
        return f"{m} min"
    if minutes < 48 * 60:
        return f"{round(minutes / 60)} h"
    return f"{round(minutes / 1440)} days"


def _pct(p: float) -> str:
    pct = p * 100
    if pct < 1:
        return "under 1 %" if pct > 0 else "no"
    return f"{round(pct)} %"


@dataclass(frozen=True)
class RepeatLink:
    call_id: int
    visitor_id: str
    started_at: datetime
    confidence: float = 1.0
    visit_id: str | None = None


def link_repeat_caller(previous_calls: Sequence[tuple], now: datetime) -> RepeatLink | None:
    """The caller's most recent earlier call that was attributed to a visitor.

    ``previous_calls`` are ``(call_id, visitor_id, started_at[, confidence[,
    visit_id]])`` of the same caller id (``started_at`` a datetime or ISO text).
    Calls made days after the visit cannot be recovered by the pool; this is
    what links them.
    """
    best: RepeatLink | None = None
    for call_id, visitor_id, started, *more in previous_calls:
        if visitor_id is None:
            continue
        at = parse_iso(started) if isinstance(started, str) else started
        if at >= now:
            continue
        if best is None or at > best.started_at:
            confidence = more[0] if more and more[0] is not None else 1.0
            visit = more[1] if len(more) > 1 else None
            best = RepeatLink(call_id, visitor_id, at, float(confidence), visit)
    return best


def by_source(source: Source | None, pool: str | None) -> tuple[float | None, str] | None:
    """The attribution of a call that no visitor decides: a number of no known source
    (None), an off-site source's fixed number or a source's own number outside any pool
    (certain). None: the number is a pool's, and its visitors decide (``attribute``)."""
    if source is None:
        return None, "not a tracking number of a known source"
    if source.kind is SourceKind.OFFSITE:
        return 1.0, "off-site source: its own fixed number"
    if pool is None:
        return 1.0, "source-level number (no pool): the source is certain"
    return None
