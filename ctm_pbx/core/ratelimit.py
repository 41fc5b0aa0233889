"""Per-client token buckets (pure: time is passed in).

The web API limits how fast one IP address can create visitors and take
leases, so that a bot cannot drain a number pool.

The buckets are kept in the order their clients were last seen (an
``OrderedDict``), so that forgetting is O(1) whatever the number of clients:
the least recently seen bucket is the first to be full again, and the first
to go when ``max_clients`` is reached. No request scans the buckets.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

SWEEP = 2  # idle buckets a new client forgets at most: more than it adds, never a scan


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class RateLimiter:
    """``rate`` requests per second on average, bursts up to ``burst``."""

    rate: float
    burst: int
    max_clients: int = 100_000
    _buckets: OrderedDict[str, _Bucket] = field(default_factory=OrderedDict)

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, client: str, now: float) -> tuple[bool, float]:
        """(allowed, seconds until the next request would be allowed)."""
        buckets = self._buckets
        bucket = buckets.get(client)
        if bucket is None:
            self._evict(now)
            bucket = buckets[client] = _Bucket(float(self.burst), now)
        else:
            buckets.move_to_end(client)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return True, 0.0
        return False, (1 - bucket.tokens) / self.rate

    def refund(self, client: str) -> None:
        """Give back a token ``allow`` took for something that did not happen after all."""
        bucket = self._buckets.get(client)
        if bucket is not None:
            bucket.tokens = min(self.burst, bucket.tokens + 1)

    def _evict(self, now: float) -> None:
        """Forget up to ``SWEEP`` clients whose buckets are full again, then the oldest if full.

        A full bucket and a forgotten one allow the same, so forgetting early
        changes no answer; it keeps the memory to the clients still limited.
        """
        buckets = self._buckets
        full_after = self.burst / self.rate
        for _ in range(SWEEP):
            if not buckets:
                break
            oldest = next(iter(buckets.values()))
            if now - oldest.at < full_after:
                break
            buckets.popitem(last=False)
        if len(buckets) >= self.max_clients:  # still full: drop the least recently seen
            buckets.popitem(last=False)
