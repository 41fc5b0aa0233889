"""``hand_out``: a new visitor's number from the pool's next candidate (table-driven), and
the store's order around it (a number just handed out, a bounce)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ctm_pbx.adapters.config_loader import parse_config
from ctm_pbx.adapters.store import leases as lease_store
from ctm_pbx.adapters.store import migrate, open_db
from ctm_pbx.adapters.visits import VisitRequest, handle_visit
from ctm_pbx.core.clock import iso
from ctm_pbx.core.model import Pool
from ctm_pbx.core.pools import Candidate, Lease, first_expiry, hand_out
from ctm_pbx.edges.cli import sync_config_numbers
from tests.helpers import BROWSER_UA, one_pool_config

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
POOL = Pool("web", "google-ads", lease_minutes=30, cooldown_minutes=30)
OVERFLOW = Pool("web", "google-ads", lease_minutes=30, cooldown_minutes=30, overflow_number="+1999")
N1, N2 = "+13125550201", "+13125550202"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def held(number: str, last: float, lease_id: int) -> Lease:
    return Lease("v", at(last), at(last), at(last + 30), id=lease_id, number=number, pool="web")


@pytest.mark.parametrize(
    ("pool", "candidate", "kw", "number", "flags", "reason"),
    [
        (POOL, None, {}, None, (), "empty pool"),
        (POOL, Candidate(N1, None), {}, N1, (), "never used"),
        (POOL, Candidate(N1, at(-90), free_at=at(-30)), {}, N1, (), "90 min ago"),
        # resting (no active lease): the cooldown is cut short, never nothing
        (POOL, Candidate(N1, at(-40), free_at=at(20)), {}, N1, (), "cooldown cut short"),
        (POOL, Candidate(N1, at(-5), 1, free_at=at(55)), {}, N1, ("shared",), "shared with 1"),
        (
            OVERFLOW,
            Candidate(N1, at(-5), 1, free_at=at(55)),
            {},
            "+1999",
            ("overflow",),
            "overflow",
        ),
        # an unconfirmed lease held it and ended: free at once, counted
        (
            POOL,
            Candidate(N1, None, 0, released_unconfirmed=True, free_at=at(-0.5)),
            {},
            N1,
            ("unconfirmed_released",),
            "never used",
        ),
        # the client holds the cap: one of its own numbers, the least recently active
        (
            POOL,
            Candidate(N2, None),
            {"client_leases": (held(N1, -1, 7), held(N2, -3, 8)), "cap": 2},
            N2,
            ("shared", "capped"),
            "the cap",
        ),
        (POOL, Candidate(N2, None), {"client_leases": (held(N1, -1, 7),), "cap": 2}, N2, (), ""),
        # the visitor's own number, free again, goes back to them
        (
            POOL,
            Candidate(N2, None),
            {"previous": Candidate(N1, None, free_at=at(-1))},
            N1,
            (),
            "own before",
        ),
        (
            POOL,
            Candidate(N2, None),
            {"previous": Candidate(N1, at(-1), 1, free_at=at(59))},
            N2,
            (),
            "never used",
        ),
    ],
)
def test_hand_out(pool, candidate, kw, number, flags, reason) -> None:
    got = hand_out(pool, candidate, T0, **kw)
    assert got.number == number
    for flag in ("shared", "capped", "overflow", "unconfirmed_released"):
        assert getattr(got, flag) is (flag in flags), flag
    assert reason in got.reason
    if number is not None and "overflow" not in flags:
        assert got.expires_at == T0 + timedelta(seconds=60), "unconfirmed until a heartbeat"
        assert got.in_line_until == at(60), "in line as held by a visitor active now"
    else:
        assert got.in_line_until is None


def test_first_expiry_never_outlives_the_lease() -> None:
    short = Pool("p", "s", lease_minutes=1, cooldown_minutes=0)
    assert first_expiry(POOL, T0, 60) == T0 + timedelta(seconds=60)
    assert first_expiry(short, T0, 600) == T0 + timedelta(minutes=1)


# --- the store's order: a number just handed out ranks as held by a visitor active now ---

SHOP = "https://shop.example.com"
NA, NB = "+13127000000", "+13127000001"
STORE_CONFIG = one_pool_config((NA, NB), SHOP)


class Site:
    """The visit handler on a store with a pool of two numbers, ``STORE_CONFIG``."""

    def __init__(self) -> None:
        self.cfg = parse_config(STORE_CONFIG, env={})
        self.db = open_db(":memory:")
        migrate(self.db)
        sync_config_numbers(self.cfg, self.db)
        self.ids: dict[str, str] = {}

    def visit(self, who: str, minutes: float, page: bool = True) -> tuple[str, bool]:
        """A page view (or a heartbeat) of ``who``: the number shown, and whether shared."""
        landing = f"{SHOP}/?gclid={who}" if page else None
        request = VisitRequest(self.ids.get(who), landing, ip=f"198.18.0.{ord(who)}",
                               user_agent=BROWSER_UA)  # fmt: skip
        with self.db.conn:
            got = handle_visit(self.db, self.cfg, request, at(minutes))
        self.ids[who] = got.visitor_id
        shown = got.numbers["+13125550100"]
        return shown["number"], bool(shown.get("shared"))

    def close(self, who: str, minutes: float) -> None:
        with self.db.conn:
            lease_store.close_leases(self.db, self.ids[who], at(minutes), self.cfg.pools)

    def free_at(self, number: str) -> str:
        return self.db.conn.execute(
            "SELECT free_at FROM tracking_numbers WHERE number = ?", (number,)
        ).fetchone()[0]


def resting_and_just_handed_out() -> tuple[Site, str, str]:
    """Visitor a read a page for 5 minutes and left (its number rests 30 minutes from the close);
    b arrives at minute 10 and takes the other number, unconfirmed (no heartbeat yet)."""
    site = Site()
    resting, _ = site.visit("a", 0)
    site.visit("a", 10 / 60, page=False)  # the first heartbeat confirms the lease
    for minute in range(1, 6):
        site.visit("a", minute, page=False)
    site.close("a", 5 + 5 / 60)
    fresh, shared = site.visit("b", 10)
    assert {resting, fresh} == {NA, NB} and not shared
    return site, resting, fresh


@pytest.mark.parametrize(
    ("who", "minutes", "heartbeat", "gets", "shared"),
    [
        # before b's first heartbeat: the resting number, not b's (the pool is exhausted)
        ("c", 10 + 5 / 60, False, "resting", False),
        # b's page confirmed: still the resting number (b is active now)
        ("c", 11, True, "resting", False),
        # b bounced (no heartbeat): its number is free at its first expiry, without a rest
        ("c", 11 + 1 / 60, False, "fresh", False),
    ],
)
def test_store_a_number_just_handed_out_ranks_as_held_now(
    who, minutes, heartbeat, gets, shared
) -> None:
    site, resting, fresh = resting_and_just_handed_out()
    if heartbeat:
        site.visit("b", 10 + 10 / 60, page=False)
    number, was_shared = site.visit(who, minutes)
    assert number == {"resting": resting, "fresh": fresh}[gets]
    assert was_shared is shared


def test_store_a_bounce_leaves_its_number_free_at_its_first_expiry() -> None:
    site, resting, fresh = resting_and_just_handed_out()
    assert site.free_at(fresh) == iso(at(10 + 60)), "in line as held by a visitor active now"
    number, _ = site.visit("c", 10.5)  # before b's lease ends: the resting number
    assert number == resting
    number, shared = site.visit("d", 11)  # b's lease ended unconfirmed at minute 11
    assert (number, shared) == (fresh, False), "b's bounce did not make it rest"
    assert site.free_at(fresh) == iso(at(11 + 60)), "now in line as held by d"
