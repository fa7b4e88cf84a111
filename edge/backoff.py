"""Reconnecting politely: exponential backoff with jitter for one link, and a cap on the whole site's rate of
new upstream connections, so that a cloud that closes or stalls is not hammered and 200 chargers do not all
reconnect in the same second after an outage. Plain objects fed the time; the shell does the sleeping."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

STABLE_AFTER = 10.0  # seconds: a link that answered a call and stayed up this long resets its backoff


class Backoff:
    """Pauses between attempts: doubling from `first` up to `cap`, with "equal jitter" (half of each pause
    fixed, half random), so that links that failed together do not come back together."""

    def __init__(self, first: float, cap: float, rng: Callable[[], float] = random.random):
        self.first, self.cap, self.rng = first, cap, rng
        self.attempts = 0

    def next(self) -> float:
        ceiling = min(self.cap, self.first * 2 ** min(self.attempts, 30))
        self.attempts += 1
        return ceiling / 2 + self.rng() * ceiling / 2

    def reset(self) -> None:
        self.attempts = 0


class RateLimit:
    """A token bucket: on average `rate` connections a second, at most `burst` at once. `delay()` books the
    next free slot and says how long to wait for it, so callers queue in order instead of retrying."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = max(1.0, rate if burst is None else burst)
        self.clock = clock
        self.tokens = self.burst
        self.last = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now

    def delay(self) -> float:
        """Take a slot; the seconds until it comes (0: now)."""
        self._refill()
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def try_take(self) -> bool:
        """Take a slot if one is free now."""
        self._refill()
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
