"""Website visits: resolve the source, keep the visitor's touch, hand out numbers.

One writer job per API request (``handle_visit``): it reads and writes the
visitor, the visit and the leases in one transaction, so two requests can never
take the same free number.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlite_utils

from ctm_pbx.adapters.store import leases as lease_store
from ctm_pbx.core.clock import iso, parse_iso
from ctm_pbx.core.model import Config, Pool, SourceKind
from ctm_pbx.core.pools import assign, lease_expiry
from ctm_pbx.core.sources import Touch, attribute_visitor, parse_visit, resolve_source

VISIT_IDLE = timedelta(minutes=30)  # a page view after this much idle time starts a new visit
RENEW_EVERY_S = 60


@dataclass(frozen=True)
class VisitRequest:
    visitor_id: str | None
    landing_url: str | None  # None: a renewal (heartbeat), not a page view
    referrer: str | None = None
    ip: str | None = None
    user_agent: str | None = None


@dataclass
class VisitResult:
    visitor_id: str
    visit_id: str | None
    source: str | None
    rule: str
    numbers: dict[str, dict] = field(default_factory=dict)  # target E.164 -> shown number
    expires_at: str | None = None

    def as_json(self) -> dict:
        return {
            "visitor_id": self.visitor_id,
            "source": self.source,
            "rule": self.rule,
            "numbers": self.numbers,
            "expires_at": self.expires_at,
            "renew_every_s": RENEW_EVERY_S,
        }


def new_id() -> str:
    return secrets.token_urlsafe(12)


def handle_visit(
    db: sqlite_utils.Database, config: Config, req: VisitRequest, now: datetime
) -> VisitResult:
    visitor = lease_store.get_visitor(db, req.visitor_id) if req.visitor_id else None
    visitor_id = visitor["id"] if visitor else new_id()
    current = _current_touch(db, visitor)
    visit_id = visitor["visit_id"] if visitor else None
    source, rule = (current.source, current.rule) if current else (None, "")
    if req.landing_url is not None:
        facts = parse_visit(req.landing_url, req.referrer)
        decision = resolve_source(config.sources, facts)
        touch, _reason = attribute_visitor(
            current, decision, config.sources, now, config.tracking.first_touch_days
        )
        last = _latest_visit(db, visitor_id)
        arrived = decision.phase in ("landing", "referrer")
        if last and not arrived and now - parse_iso(last["last_active_at"]) < VISIT_IDLE:
            page_visit = last["id"]
            lease_store.touch_visit(db, page_visit, now)
        else:
            page_visit = new_id()
            lease_store.upsert_visitor(db, visitor_id, now=now)
            lease_store.insert_visit(
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
            )
        if current is None or touch != current:
            visit_id = page_visit  # the visit that set the attributed source
            lease_store.upsert_visitor(
                db, visitor_id, now=now, source=touch.source, visit_id=visit_id
            )
        else:
            lease_store.upsert_visitor(db, visitor_id, now=now)
        source, rule = touch.source, touch.rule
    elif visitor is not None:
        last = _latest_visit(db, visitor_id)
        if last:
            lease_store.touch_visit(db, last["id"], now)
    result = VisitResult(visitor_id, visit_id, source, rule)
    if visitor is None and req.landing_url is None:
        return result  # a renewal for a visitor we do not know: nothing to renew
    _assign_numbers(db, config, result, now)
    return result


def _current_touch(db: sqlite_utils.Database, visitor: dict | None) -> Touch | None:
    if not visitor or not visitor.get("visit_id"):
        return None
    visit = lease_store.get_visit(db, visitor["visit_id"])
    at = parse_iso(visit["started_at"]) if visit else parse_iso(visitor["first_seen_at"])
    return Touch(visitor.get("source"), (visit or {}).get("source_rule") or "", at)


def _latest_visit(db: sqlite_utils.Database, visitor_id: str) -> dict | None:
    row = db.execute(
        "SELECT id, last_active_at FROM visits WHERE visitor_id = ?"
        " ORDER BY started_at DESC LIMIT 1",
        [visitor_id],
    ).fetchone()
    return {"id": row[0], "last_active_at": row[1]} if row else None


def _assign_numbers(
    db: sqlite_utils.Database, config: Config, result: VisitResult, now: datetime
) -> None:
    source = config.sources.get(result.source or "")
    if source is None or source.kind is not SourceKind.ONSITE:
        return
    pools = [p for p in config.pools.values() if p.source == source.name]
    expiry: list[str] = []
    for target in config.targets.values():
        pool = _pool_for(pools, target.name)
        if pool is not None:
            shown = _lease_number(db, pool, result, now)
            if shown is not None:
                result.numbers[target.number] = shown
                if shown.get("expires_at"):
                    expiry.append(shown.pop("expires_at"))
            continue
        static = _static_number(db, source.name)
        if static:
            result.numbers[target.number] = {"number": static, "pool": None, "shared": False}
    result.expires_at = min(expiry) if expiry else None


def _pool_for(pools: list[Pool], target: str) -> Pool | None:
    exact = [p for p in pools if p.target == target]
    if exact:
        return exact[0]
    general = [p for p in pools if p.target is None]
    return general[0] if general else None


def _lease_number(
    db: sqlite_utils.Database, pool: Pool, result: VisitResult, now: datetime
) -> dict | None:
    held = lease_store.active_lease(db, result.visitor_id, pool.name, now)
    if held is not None and held.id is not None:
        # the common case, a returning visitor: renew without looking at the whole pool
        expires = lease_expiry(pool, now)
        lease_store.renew_lease(db, held.id, now, expires, number=held.number)
        return {
            "number": held.number,
            "pool": pool.name,
            "shared": held.shared,
            "expires_at": iso(expires),
        }
    numbers = lease_store.pool_numbers(db, pool.name)
    view = lease_store.pool_view(db, pool, numbers, now)
    decision = assign(view, result.visitor_id, now)
    lease_store.record_assignment(
        db, view, decision, visitor_id=result.visitor_id, visit_id=result.visit_id, now=now
    )
    if decision.number is None:
        return None
    return {
        "number": decision.number,
        "pool": pool.name,
        "shared": decision.shared,
        "expires_at": iso(decision.expires_at) if decision.expires_at else None,
    }


def _static_number(db: sqlite_utils.Database, source: str) -> str | None:
    """Source-level tracking: an on-site source without a pool shows one number."""
    row = db.execute(
        "SELECT number FROM tracking_numbers WHERE source = ? AND pool IS NULL"
        " AND status = 'active' ORDER BY number LIMIT 1",
        [source],
    ).fetchone()
    return row[0] if row else None
