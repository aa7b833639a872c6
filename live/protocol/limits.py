"""Limits that keep one greedy client from hurting the others (docs/protocol.md, close codes)."""

from __future__ import annotations

import time
from collections import Counter


class MessageRateLimiter:
    """A token bucket: ``rate_per_s`` messages a second on average, bursts up to ``burst``."""

    def __init__(self, *, rate_per_s: float, burst: int, clock=time.monotonic) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.updated_at = clock()

    def allow(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated_at) * self.rate_per_s)
        self.updated_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class CountsPerAddress:
    """A count per client address with a limit: this process's open WebSocket connections, or
    its connections whose first HTTP request is not complete yet."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def acquire(self, address: str, *, limit: int) -> bool:
        if self.counts[address] >= limit:
            return False
        self.counts[address] += 1
        return True

    def release(self, address: str) -> None:
        self.counts[address] -= 1
        if self.counts[address] <= 0:
            del self.counts[address]


connections_per_address = CountsPerAddress()  # this process's open WebSocket connections
