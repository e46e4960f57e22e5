"""Rate limits for the XMPP endpoint: token buckets, per session and per source address.

Three uses (issue 5, "limits per connection"; the reconnect storm for the third):

- :class:`TokenBucket` -- the stanza rate of one session. A session that runs out is not
  disconnected: it goes into debt and the server stops reading from its socket until the
  debt is paid (TCP back-pressure, as Prosody's ``mod_limits`` does), so a burst is smoothed
  instead of punished.
- :class:`SourceThrottle` -- failed SASL authentications per source IP address. Each
  failure takes a token; with none left, authentication from that address is refused
  (``temporary-auth-failure``) until tokens refill. This bounds online password guessing
  whatever the number of connections the guesser opens.
- :class:`PendingLogins` -- admission control: how many connections may be negotiating
  (TLS, SASL, bind) at once. At the cap the server stops accepting, so the excess waits in
  the kernel's listen backlog instead of each starting a handshake the core cannot finish
  before the authentication timeout (:mod:`heslock.xmpp.server`, "Admission control").

All are plain arithmetic on a monotonic clock passed in by the caller (sans-I/O).
"""

from __future__ import annotations

from typing import Final, Generic, TypeVar

_T = TypeVar("_T")

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


#: Connections negotiating at once by default, sized for one core. A RAS login (TLS
#: handshake, credential lookup in the database, SCRAM proof, bind) costs 5-8 ms of CPU
#: (130-200 logins per CPU-second measured, docs/benchmarks.md), so 256 admitted at once
#: are all done in about 2 s: far inside the 10 s authentication timeout, with room for
#: slow links and a busy core, while enough round trips overlap to keep the core busy.
MAX_PENDING_LOGINS: Final = 256


class PendingLogins(Generic[_T]):
    """The connections accepted but not yet bound, at most ``cap`` of them.

    The server adds a connection when it accepts it and releases it (:meth:`release`) when
    it binds or closes (idempotent). :attr:`peak` is the most ever held at once (a metric, and what
    the tests check the cap against).
    """

    __slots__ = ("_members", "cap", "full_count", "peak")

    def __init__(self, cap: int) -> None:
        if cap < 1:
            raise ValueError("the cap on pending logins must be at least 1")
        self.cap = cap
        self.peak = 0
        #: How often accepting stopped because the cap was reached (the server counts).
        self.full_count = 0
        self._members: set[_T] = set()

    def __len__(self) -> int:
        return len(self._members)

    @property
    def full(self) -> bool:
        """Whether the cap is reached (accept nothing more)."""
        return len(self._members) >= self.cap

    def admit(self, member: _T) -> None:
        """Count ``member`` as negotiating (the caller checked :attr:`full`)."""
        self._members.add(member)
        self.peak = max(self.peak, len(self._members))

    def release(self, member: _T) -> bool:
        """``member`` bound or closed; False if it was not counted (already released)."""
        members = self._members
        if member not in members:
            return False
        members.remove(member)
        return True
