"""Per-client token buckets (pure: time is passed in).

The web API limits how fast one IP address can create visitors and take
leases, so that a bot cannot drain a number pool.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def allow(self, client: str, now: float) -> tuple[bool, float]:
        """(allowed, seconds until the next request would be allowed)."""
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= self.max_clients:
                self._evict(now)
            bucket = self._buckets[client] = _Bucket(float(self.burst), now)
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
        """Forget clients whose buckets are full again (idle long enough)."""
        full_after = self.burst / self.rate
        for key in [k for k, b in self._buckets.items() if now - b.at >= full_after]:
            del self._buckets[key]
        if len(self._buckets) >= self.max_clients:  # still full: drop the oldest
            oldest = min(self._buckets, key=lambda k: self._buckets[k].at)
            del self._buckets[oldest]
