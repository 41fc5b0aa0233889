"""Website visits: resolve the source, keep the visitor's touch, hand out numbers.

``handle_visit`` is one writer job: it reads and writes the visitor, the visit and
the leases in one transaction, so two requests can never take the same free
number. It also returns what it decided (``KnownVisitor``), so that
``VisitDesk`` can answer the same visitor's next pages and heartbeats from
memory (``ctm_pbx.core.returning_visitors``) and write their page counts and
lease renewals in batches.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlite_utils

from ctm_pbx.adapters.crawlers import is_crawler
from ctm_pbx.adapters.store import leases as lease_store
from ctm_pbx.adapters.store import pool_stats
from ctm_pbx.adapters.store import visitors as visitor_store
from ctm_pbx.adapters.store.writer import StoreUnavailable, StoreWriter
from ctm_pbx.core.client_address import lease_client
from ctm_pbx.core.clock import iso, parse_iso
from ctm_pbx.core.model import Config, NumberInfo, Pool
from ctm_pbx.core.pools import PoolView, hand_out, lease_expiry
from ctm_pbx.core.returning_visitors import (
    ARRIVALS,
    VISIT_IDLE,
    HeldNumber,
    KnownVisitor,
    RememberedVisitors,
    answer_known_visitor,
)
from ctm_pbx.core.source_index import SourceIndex
from ctm_pbx.core.sources import (
    Touch,
    attribute_visitor,
)
from ctm_pbx.core.visit_plan import Page, VisitPlan

log = logging.getLogger(__name__)
RENEW_EVERY_S = 60
FIRST_RENEW_S = 10  # a new lease's first heartbeat (it confirms the lease: a live page)
VISITS_PER = timedelta(days=1)  # ``tracking.max_visits_per_day`` counts visits this recent


@dataclass(frozen=True)
class VisitRequest:
    visitor_id: str | None
    landing_url: str | None  # None: a renewal (heartbeat), not a page view
    referrer: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    may_create: bool = True  # False: a visitor not already stored is refused, not created
    # what the page reports with a page view (validated by the API), stored with the visit
    time_zone: str | None = None  # the browser's IANA time zone
    language: str | None = None  # the browser's language (BCP 47)
    ga_client_id: str | None = None  # Google Analytics' client id (``_ga`` cookie)
    ga_session_id: str | None = None  # and session id (``_ga_<stream>`` cookie)

    def signals(self) -> tuple[str | None, str | None, str | None, str | None]:
        return (self.time_zone, self.language, self.ga_client_id, self.ga_session_id)

    def note_signals(self, db: sqlite_utils.Database, visit_id: str) -> None:
        """Store what the page reported (if anything) with the visit it counts in."""
        zone, language, client, session = self.signals()
        if zone or language or client or session:
            visitor_store.note_visit_signals(
                db,
                visit_id,
                time_zone=zone,
                language=language,
                ga_client_id=client,
                ga_session_id=session,
            )


@dataclass
class VisitResult:
    visitor_id: str
    visit_id: str | None
    source: str | None
    rule: str
    numbers: dict[str, dict] = field(default_factory=dict)  # target E.164 -> shown number
    expires_at: str | None = None
    known: KnownVisitor | None = None  # what the next request of this visitor may start from
    created: bool = False  # a new visitor was stored
    refused: bool = False  # a new visitor was needed but ``may_create`` was False
    unknown: bool = False  # a renewal for a visitor that is not stored
    unconfirmed: bool = False  # a new lease waits for its first heartbeat

    def as_json(self) -> dict:
        return {
            "visitor_id": self.visitor_id,
            "source": self.source,
            "rule": self.rule,
            "numbers": self.numbers,
            "expires_at": self.expires_at,
            "renew_every_s": FIRST_RENEW_S if self.unconfirmed else RENEW_EVERY_S,
        }


def new_id() -> str:
    return secrets.token_urlsafe(12)


def handle_visit(
    db: sqlite_utils.Database,
    config: Config,
    req: VisitRequest,
    now: datetime,
    sources: SourceIndex | None = None,
    plan: VisitPlan | None = None,
    page: Page | None = None,
) -> VisitResult:
    """``sources``: the index of ``config.sources`` (None: the linear scan decides);
    ``plan``: ``VisitPlan.of(config, sources)``, which the caller may keep; ``page``:
    the page view's facts and source, when the caller has read them already.

    A new visitor costs one read of nothing, a write of its visitor row, its visit
    and its leases; a stored one a read of its state first (``visitor_state``)."""
    if plan is None:
        plan = VisitPlan.of(config, sources)
    visitor = None
    if req.visitor_id:
        visitor = visitor_store.visitor_state(db, req.visitor_id, now - VISITS_PER)
    if visitor is None and req.landing_url is None:
        # a renewal for a visitor we do not know (or no longer): the script starts a visit
        return VisitResult(req.visitor_id or "", None, None, "", unknown=True)
    if req.landing_url is not None and is_crawler(req.user_agent):
        return _crawler_visit(db, plan, config, req, now, page)
    if visitor is None and not req.may_create:
        return VisitResult("", None, None, "", refused=True)
    visitor_id = visitor.id if visitor else new_id()
    current = _current_touch(visitor)
    visit_id = visitor.visit_id if visitor else None
    source, rule = (current.source, current.rule) if current else (None, "")
    touch = current
    page_visit: str | None = None
    if req.landing_url is not None:
        facts, decision = page or plan.read_page(req.landing_url, req.referrer)
        touch, _reason = attribute_visitor(
            current, decision, config.sources, now, config.tracking.first_touch_days
        )
        last = visitor.latest_visit if visitor else None
        arrived = decision.phase in ARRIVALS
        same_visit = (
            last is not None
            and visitor is not None
            and visitor.latest_active_at is not None
            and not arrived
            and now - parse_iso(visitor.latest_active_at) < VISIT_IDLE
        )
        new_visit = True
        if (
            last
            and visitor is not None
            and not same_visit
            and visitor.visits_since >= config.tracking.max_visits_per_day
        ):
            # bounded writes: beyond the cap an arrival is another page of the latest
            # visit; the visitor keeps its source and numbers, nothing new is stored
            page_visit, new_visit = last, False
            touch = current
        elif last and same_visit:
            page_visit, new_visit = last, False
        else:
            page_visit = new_id()
        # the visitor's row is written once (before its visit: the visit refers to it)
        if touch is not None and (current is None or touch != current):
            visit_id = page_visit  # the visit that set the attributed source
            visitor_store.upsert_visitor(
                db,
                visitor_id,
                now=now,
                source=touch.source,
                # a touch without a source keeps the visit that set the source (none yet)
                visit_id=visit_id if touch.source is not None else None,
            )
        else:
            visitor_store.upsert_visitor(db, visitor_id, now=now)
        if new_visit:
            visitor_store.insert_visit(
                db,
                page_visit,
                visitor_id,
                now=now,
                source=decision.source,
                source_rule=decision.rule,
                landing_url=req.landing_url[:2000],
                referrer=(req.referrer or "")[:2000] or None,
                utm={
                    "source": facts.utm_source,
                    "medium": facts.utm_medium,
                    "campaign": facts.utm_campaign,
                    "term": facts.utm_term,
                    "content": facts.utm_content,
                },
                click_ids={k: facts.param(k) or "" for k in facts.click_ids},
                ip=req.ip,
                user_agent=(req.user_agent or "")[:500] or None,
                signals=req.signals(),
            )
        else:
            visitor_store.touch_visit(db, page_visit, now, visitor=False)
            req.note_signals(db, page_visit)
        if touch is not None:
            source, rule = touch.source, touch.rule
    elif visitor is not None and visitor.latest_visit is not None:
        page_visit = visitor.latest_visit
        visitor_store.touch_visit(db, page_visit, now, page_view=False)
    result = VisitResult(visitor_id, visit_id, source, rule, created=visitor is None)
    held = _assign_numbers(db, config, plan, result, now, lease_client(req.ip or "unknown"))
    if page_visit is not None:
        known = KnownVisitor(visitor_id, touch, visit_id, page_visit, now, tuple(held), now)
        result.known = known if known.can_be_remembered() else None
    return result


def _current_touch(visitor: visitor_store.VisitorState | None) -> Touch | None:
    if not visitor or not visitor.visit_id:
        return None
    at = parse_iso(visitor.touch_started_at or visitor.first_seen_at)
    return Touch(visitor.source, visitor.touch_rule or "", at)


def _crawler_visit(
    db: sqlite_utils.Database,
    plan: VisitPlan,
    config: Config,
    req: VisitRequest,
    now: datetime,
    page: Page | None,
) -> VisitResult:
    """A crawler or headless tool: the source's static number or the page's own, and
    nothing stored but the pools' crawler counters."""
    assert req.landing_url is not None
    _facts, decision = page or plan.read_page(req.landing_url, req.referrer)
    result = VisitResult(req.visitor_id or "", None, decision.source, decision.rule)
    pools = plan.pools.get(decision.source or "")
    if pools is None:  # not an on-site source
        return result
    static = _static_number(db, decision.source or "")
    if static:
        for target in config.targets.values():
            result.numbers[target.number] = HeldNumber(target.number, static).shown()
    for pool in pools:
        pool_stats.bump_pool_counters(db, pool.name, now=now, crawlers=1)
    return result


def _assign_numbers(
    db: sqlite_utils.Database,
    config: Config,
    plan: VisitPlan,
    result: VisitResult,
    now: datetime,
    client: str,
) -> list[HeldNumber]:
    targets = plan.targets.get(result.source or "")
    if not targets:  # no on-site source, or no target
        return []
    held: list[HeldNumber] = []
    leased: set[str] = set()  # pools this request took a lease of
    static: str | None = None
    for target, pool in targets:
        if pool is not None:
            # a visitor created just now holds no lease of a pool it did not take here
            fresh = result.created and pool.name not in leased
            shown = _lease_number(db, config, pool, target, result, now, client, fresh=fresh)
            leased.add(pool.name)
        else:
            static = static or _static_number(db, result.source or "")
            shown = HeldNumber(target, static) if static else None
        if shown is not None:
            held.append(shown)
            result.numbers[target] = shown.shown()
    expiry = [h.expires_at for h in held if h.expires_at is not None]
    result.expires_at = iso(min(expiry)) if expiry else None
    return held


def _lease_number(
    db: sqlite_utils.Database,
    config: Config,
    pool: Pool,
    target: str,
    result: VisitResult,
    now: datetime,
    client: str,
    *,
    fresh: bool = False,
) -> HeldNumber | None:
    """The visitor's lease renewed, or a new one from ``hand_out``: O(log n) either way.

    ``fresh``: the visitor holds no lease of the pool and held none before (one
    created by this request): nothing to look up but the pool's next number."""
    visitor_id, visit_id = result.visitor_id, result.visit_id
    # a released or moved number is not renewed
    held = None if fresh else lease_store.renewable_lease(db, visitor_id, pool.name, now)
    if held is not None and held.id is not None:
        # a returning visitor: renew without looking at the whole pool
        expires = lease_expiry(pool, now)
        rest = timedelta(minutes=pool.cooldown_minutes)
        lease_store.renew_lease(db, held.id, now, expires, number=held.number, rest=rest)
        return HeldNumber(target, held.number, pool.name, held.shared, held.id, expires)
    tracking = config.tracking
    candidate = lease_store.next_candidate(db, pool.name, now, tracking.confirm_seconds)
    own = lease_store.client_leases(db, pool.name, client, now)
    before = (
        None
        if fresh
        else lease_store.previous_number(db, visitor_id, pool.name, now, tracking.confirm_seconds)
    )
    decision = hand_out(
        pool,
        candidate,
        now,
        client_leases=own,
        cap=tracking.max_leases_per_client,
        confirm_seconds=tracking.confirm_seconds,
        previous=before,
    )
    if decision.capped and _first_warning((pool.name, client), now):
        log.warning(
            "pool %s: client %s holds %d numbers, the cap: its next visitors share them",
            pool.name,
            client,
            len(own),
        )
    lease_id = lease_store.record_assignment(
        db,
        PoolView(pool),
        decision,
        visitor_id=visitor_id,
        visit_id=visit_id,
        now=now,
        client=client,
    )
    if decision.number is None:
        return None
    if decision.new_lease:
        result.unconfirmed = True
    return HeldNumber(
        target, decision.number, pool.name, decision.shared, lease_id, decision.expires_at
    )


_warned: dict[tuple[str, str], datetime] = {}  # (pool, client) -> last warned (at most hourly)


def _first_warning(key: tuple[str, str], now: datetime) -> bool:
    last = _warned.get(key)
    if last is not None and now - last < timedelta(hours=1):
        return False
    if len(_warned) >= 10_000:
        _warned.clear()
    _warned[key] = now
    return True


def _still_active(known: KnownVisitor, numbers: Mapping[str, NumberInfo]) -> bool:
    for held in known.numbers:
        info = numbers.get(held.number)
        if info is None or info.pool != held.pool:
            return False
    return True


def _static_number(db: sqlite_utils.Database, source: str) -> str | None:
    """Source-level tracking: an on-site source without a pool shows one number."""
    row = db.execute(
        "SELECT number FROM tracking_numbers WHERE source = ? AND pool IS NULL"
        " AND status = 'active' ORDER BY number LIMIT 1",
        [source],
    ).fetchone()
    return row[0] if row else None


class VisitDesk:
    """The visit API's answers: returning visitors from memory, the rest through the writer.

    A request the memory can answer (``answer_known_visitor``) does not wait for
    the store: its page view and lease renewals are buffered and written as one
    writer job ``flush_after`` seconds later, or before any request that does
    go to the store (jobs run in order, so that one sees them). If the daemon
    dies, at most that much activity is lost; numbers and sources never are.
    """

    def __init__(
        self,
        config: Config,
        writer: StoreWriter,
        *,
        flush_after: float = 0.1,
        max_known: int = 200_000,
        active_numbers: Callable[[], Mapping[str, NumberInfo]] | None = None,
    ) -> None:
        self.config = config
        self.writer = writer
        # the daemon's live inventory: a remembered visitor whose number was released or
        # moved since is asked of the store again (which hands out another number)
        self.active_numbers = active_numbers
        self.flush_after = flush_after
        self.max_known = max_known
        self._signals: OrderedDict[str, tuple] = OrderedDict()  # page visit -> last stored
        self._pending = _empty_page_views()
        self._flush_timer: asyncio.TimerHandle | None = None
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        """Use ``config`` from the next request on (a reload). The source index is built
        first; then the config, the index and empty memories are swapped in with no
        await between them: a request sees the old config or the new, never a mix (one
        already at the store's thread finishes with the config it was given)."""
        # built once per config: a visit's source costs the same with 10 sources or 1,000
        sources = SourceIndex(config.sources)
        plan = VisitPlan.of(config, sources)
        self.config, self.sources, self.plan = config, sources, plan
        # what was remembered of visitors was decided by the old sources and pools
        self._known = RememberedVisitors(self.max_known)
        # a site's pages repeat across visitors: a page's source is a function of its URLs
        self._page_of = functools.lru_cache(maxsize=4096)(self.plan.read_page)

    async def visit(self, req: VisitRequest, now: datetime) -> VisitResult:
        quick = self._quick(req, now)
        if quick is not None:
            return quick
        self.flush()
        if not self.writer.writable:  # not even waiting for the store's thread
            return self._unstored(req)
        # read once: what ``_quick`` read of a known visitor's page is in the cache
        page = None if req.landing_url is None else self._page_of(req.landing_url, req.referrer)
        try:
            result = await self.writer.run(
                handle_visit, self.config, req, now, self.sources, self.plan, page, on_loop=True
            )
        except StoreUnavailable as exc:
            log.warning("visit answered from memory: %s", exc)
            return self._unstored(req)
        self._remember(result.known, now)
        if result.known is not None and req.landing_url is not None:
            self._noted_signals(result.known.page_visit, req)
        return result

    def _noted_signals(self, page_visit: str, req: VisitRequest) -> bool:
        """Whether the visit's page reported something new since it was last stored (the
        memory then writes it: Google Analytics may set its cookies after the first page)."""
        signals = req.signals()
        if not any(signals) or self._signals.get(page_visit) == signals:
            return False
        if len(self._signals) >= self.max_known:
            self._signals.popitem(last=False)
        self._signals[page_visit] = signals
        return True

    def _unstored(self, req: VisitRequest) -> VisitResult:
        """The answer while the database cannot be written, to a visitor the memory does
        not know: the source of this page's URLs and, for each target, a number that
        needs no new lease (the pool's overflow number, else the source's own number,
        else none: the page keeps its number). Nothing is stored: the visitor keeps its
        id (a new one gets an id that is not stored yet) and is stored on a later page."""
        visitor_id = req.visitor_id or new_id()
        if req.landing_url is None:  # a heartbeat: its leases cannot be renewed now
            return VisitResult(visitor_id, None, None, "", unknown=True)
        _facts, decision = self._page_of(req.landing_url, req.referrer)
        result = VisitResult(visitor_id, None, decision.source, decision.rule)
        targets = self.plan.targets.get(decision.source or "")
        if targets is None:  # not an on-site source
            return result
        name = decision.source
        numbers = self.active_numbers() if self.active_numbers is not None else {}
        own = sorted(n for n, i in numbers.items() if i.source == name and not i.pool)
        for target, pool in targets:
            if pool is not None and pool.overflow_number:
                held = HeldNumber(target, pool.overflow_number, pool.name)
                result.numbers[target] = held.shown()
            elif pool is None and own:
                result.numbers[target] = HeldNumber(target, own[0]).shown()
        return result

    async def close(self, visitor_id: str, now: datetime) -> int | None:
        """The visitor's page closed (swap.js's beacon): their open leases are closed.

        The buffered activity goes first (a renewal before the close stays before it).
        Returns how many leases were closed; None when the store cannot be written
        (the close is lost: the leases end as they would have without it).
        """
        self.flush()
        if not self.writer.writable:
            return None
        try:
            return await self.writer.run(
                lease_store.close_leases, visitor_id, now, self.config.pools
            )
        except StoreUnavailable as exc:
            log.warning("page close not stored: %s", exc)
            return None

    def flush(self) -> None:
        """Queue the buffered activity for the writer (now, not after the delay)."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        views, self._pending = self._pending, _empty_page_views()
        if views.visits or views.renewals:
            self.writer.defer(
                lease_store.record_page_views, views, what="page views", on_loop=False
            )

    def _quick(self, req: VisitRequest, now: datetime) -> VisitResult | None:
        known = self._known.get(req.visitor_id or "")
        if known is None:
            return None
        if self.active_numbers is not None and not _still_active(known, self.active_numbers()):
            self._known.forget(known.visitor_id)
            return None
        decision = None
        if req.landing_url is not None:
            _facts, decision = self._page_of(req.landing_url, req.referrer)
        tracking = self.config.tracking
        answer = answer_known_visitor(
            known, decision, self.config.sources, self.config.pools, tracking.first_touch_days, now
        )
        if answer is None:
            self._known.forget(known.visitor_id)
            return None
        visitor = answer.visitor
        self._known.remember(visitor, now)
        self._buffer(visitor, answer.renewed, answer.page_view, now)
        if answer.page_view and self._noted_signals(visitor.page_visit, req):
            self.writer.defer(
                req.note_signals, visitor.page_visit, what="page signals", on_loop=False
            )
        touch = visitor.touch
        expires = answer.expires_at
        return VisitResult(
            visitor.visitor_id,
            visitor.visit_id,
            touch.source if touch else None,
            touch.rule if touch else "",
            {h.target: h.shown() for h in visitor.numbers},
            iso(expires) if expires else None,
        )

    def _buffer(
        self, visitor: KnownVisitor, renewed: tuple[HeldNumber, ...], page_view: bool, now: datetime
    ) -> None:
        pending = self._pending
        _at, pages = pending.visits.get(visitor.page_visit, (now, 0))
        pending.visits[visitor.page_visit] = (now, pages + int(page_view))
        pending.visitors[visitor.visitor_id] = now
        for held in renewed:
            if held.lease_id is not None and held.expires_at is not None:
                pending.renewals[held.lease_id] = (held.number, now, held.expires_at)
                pool = self.config.pools.get(held.pool or "")
                rest = timedelta(minutes=pool.cooldown_minutes if pool else 0)
                pending.free_at[held.number] = held.expires_at + rest
        if self._flush_timer is None:
            loop = asyncio.get_running_loop()
            self._flush_timer = loop.call_later(self.flush_after, self.flush)

    def _remember(self, known: KnownVisitor | None, now: datetime) -> None:
        if known is not None:
            self._known.remember(known, now)


def _empty_page_views() -> lease_store.PageViews:
    return lease_store.PageViews({}, {}, {})
