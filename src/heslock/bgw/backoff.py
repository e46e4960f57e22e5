"""Reconnect back-off for the BGW's XMPP session: capped exponential with full jitter.

slixmpp does not reconnect after the server closes the stream, and its own retry delays
(0, 3, 9, ... s) have no jitter (FIELD-NOTES.md): after a RAS restart thousands of
gateways would come back in lock-step. So the BGW owns the schedule. "Full jitter" (AWS
Architecture Blog, "Exponential Backoff And Jitter", 2015): the n-th delay is drawn
uniformly from ``[0, min(cap, base * 2**n)]``; the expected load on the server spreads over
the whole window instead of spiking at its edge. A session that stayed up resets it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Final

#: 2**MAX_EXPONENT * base is far above any cap; stops the float from growing forever.
MAX_EXPONENT: Final = 32

_SYSTEM_RANDOM = random.SystemRandom()


class Backoff:
    """Delays for successive failed attempts; :meth:`reset` after a success."""

    def __init__(
        self,
        base_s: float,
        cap_s: float,
        uniform: Callable[[float, float], float] = _SYSTEM_RANDOM.uniform,
    ) -> None:
        if not 0 < base_s <= cap_s:
            raise ValueError("need 0 < base <= cap")
        self.base_s = base_s
        self.cap_s = cap_s
        self._uniform = uniform
        self.failures = 0

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        growth: float = 2.0 ** min(self.failures, MAX_EXPONENT)
        return min(self.cap_s, self.base_s * growth)

    def next_delay(self) -> float:
        """The delay before the next attempt (and count one more failure)."""
        delay = float(self._uniform(0.0, self.ceiling()))
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0
