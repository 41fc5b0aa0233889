"""``hand_out``: a new visitor's number from the pool's next candidate (table-driven)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ctm_pbx.core.model import Pool
from ctm_pbx.core.pools import Candidate, Lease, first_expiry, hand_out

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


def test_first_expiry_never_outlives_the_lease() -> None:
    short = Pool("p", "s", lease_minutes=1, cooldown_minutes=0)
    assert first_expiry(POOL, T0, 60) == T0 + timedelta(seconds=60)
    assert first_expiry(short, T0, 600) == T0 + timedelta(minutes=1)
