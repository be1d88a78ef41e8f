"""Per-account rate limits: a token bucket per account, over it a 429 with when to retry."""

from __future__ import annotations

import threading
import time

from api.problems import TooManyRequests


class RateLimit:
    """A token bucket per account: ``per_minute`` on average, bursts of ``burst``."""

    def __init__(self, per_minute: float, burst: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(max(1, burst))
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, username: str, what: str = "requests") -> None:
        """Spend one token of the account, or raise 429 with when to retry."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.get(username, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            if tokens < 1.0:
                wait = max(1, int((1.0 - tokens) / self.rate + 0.999))
                self._buckets[username] = (tokens, now)
                raise TooManyRequests(
                    f"more {what} than the {self.rate * 60:g} per minute allowed to one "
                    f"account (bursts of {self.burst:g}); retry in {wait} s, or ask an "
                    "administrator to raise GRIDMAP_EVENT_RATE_PER_MINUTE", wait)
            self._buckets[username] = (tokens - 1.0, now)
