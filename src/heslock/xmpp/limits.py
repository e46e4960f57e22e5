"""Rate limits for the XMPP endpoint: token buckets, per session and per source address.

Two uses (issue 5, "limits per connection"):

- :class:`TokenBucket` -- the stanza rate of one session. A session that runs out is not
  disconnected: it goes into debt and the server stops reading from its socket until the
  debt is paid (TCP back-pressure, as Prosody's ``mod_limits`` does), so a burst is smoothed
  instead of punished.
- :class:`SourceThrottle` -- failed SASL authentications per source IP address. Each
  failure takes a token; with none left, authentication from that address is refused
  (``temporary-auth-failure``) until tokens refill. This bounds online password guessing
  whatever the number of connections the guesser opens.

Both are plain arithmetic on a monotonic clock passed in by the caller (sans-I/O).
"""

from __future__ import annotations

from typing import Final

#: Sources tracked at once by :class:`SourceThrottle`; beyond this the fully refilled
#: entries are dropped first (they carry no information) so a scan from many addresses
#: cannot grow memory without bound.
MAX_TRACKED_SOURCES: Final = 65_536


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` banked; may go into debt."""

    __slots__ = ("stamp", "tokens")

    def __init__(self, burst: float, now: float) -> None:
        self.tokens = burst
        self.stamp = now

    def take(self, rate: float, burst: float, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens; return the seconds until the balance is non-negative again."""
        tokens = min(burst, self.tokens + (now - self.stamp) * rate) - cost
        self.tokens = tokens
        self.stamp = now
        return 0.0 if tokens >= 0 else -tokens / rate


class SourceThrottle:
    """Failed-authentication budget per source address (a token bucket each)."""

    __slots__ = ("_buckets", "burst", "rate")

    def __init__(self, burst: int, per_second: float) -> None:
        self.burst = float(burst)
        self.rate = per_second
        self._buckets: dict[str, TokenBucket] = {}

    def allowed(self, source: str, now: float) -> bool:
        """Whether ``source`` may attempt to authenticate now (has at least one token)."""
        bucket = self._buckets.get(source)
        if bucket is None:
            return True
        return min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate) >= 1.0

    def failed(self, source: str, now: float) -> None:
        """Record a failed authentication from ``source``."""
        bucket = self._buckets.get(source)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED_SOURCES:
                self._prune(now)
            bucket = self._buckets[source] = TokenBucket(self.burst, now)
        bucket.take(self.rate, self.burst, now)
        bucket.tokens = max(bucket.tokens, 0.0)  # failures past zero do not deepen the ban

    def _prune(self, now: float) -> None:
        full = [
            source
            for source, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.stamp) * self.rate >= self.burst
        ]
        for source in full:
            del self._buckets[source]
        if len(self._buckets) >= MAX_TRACKED_SOURCES:  # all busy: forget the oldest half
            for source in list(self._buckets)[: MAX_TRACKED_SOURCES // 2]:
                del self._buckets[source]
