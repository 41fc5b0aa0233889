"""Per-client token buckets (pure: time is passed in).

The web API limits how fast one IP address can create visitors and take
leases, so that a bot cannot drain a number pool.

The buckets are kept in the order their clients were last seen (an
``OrderedDict``), so that forgetting is O(1) whatever the number of clients:
the least recently seen bucket is the first to be full again, and the first
to go when ``max_clients`` is reached. No request scans the buckets. A bucket
is a pair of floats, which Python's cycle collector does not track: a full
memory of clients adds nothing to its pauses.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

SWEEP = 2  # idle buckets a new client forgets at most: more than it adds, never a scan


_Bucket = tuple[float, float]  # (tokens, when they were counted)


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
            tokens, at = float(self.burst), now
        else:
            buckets.move_to_end(client)
            tokens, at = bucket
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= 1:
            buckets[client] = (tokens - 1, now)
            return True, 0.0
        buckets[client] = (tokens, now)
        return False, (1 - tokens) / self.rate

    def refund(self, client: str) -> None:
        """Give back a token ``allow`` took for something that did not happen after all."""
        bucket = self._buckets.get(client)
        if bucket is not None:
            tokens, at = bucket
            self._buckets[client] = (min(self.burst, tokens + 1), at)

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
            _tokens, at = next(iter(buckets.values()))
            if now - at < full_after:
                break
            buckets.popitem(last=False)
        if len(buckets) >= self.max_clients:  # still full: drop the least recently seen
            buckets.popitem(last=False)
