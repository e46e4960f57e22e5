"""When to try a failed delivery again: exponential back-off with jitter (pure).

Attempt ``n`` (1 = the first retry after the first failure) waits
``d = min(cap, base * 2**(n-1))`` scaled by a random factor in [0.5, 1.0] ("equal
jitter": never less than half the nominal delay, so retries stay spread out, never more
than it, so the schedule's upper bound holds). Defaults (settings): base 5 s, cap 6 h,
12 attempts per event.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

Random = Callable[[], float]


@dataclass(frozen=True)
class Schedule:
    base_s: float
    cap_s: float
    max_attempts: int

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.cap_s < self.base_s or self.max_attempts < 1:
            raise ValueError("a retry schedule needs 0 < base <= cap and >= 1 attempt")

    def nominal(self, failures: int) -> float:
        """The un-jittered delay after ``failures`` failed attempts (>= 1)."""
        if failures < 1:
            raise ValueError("no delay before the first attempt")
        exponent = min(failures - 1, 62)  # 2**62 * base is past any cap
        return float(min(self.cap_s, self.base_s * (2**exponent)))

    def delay(self, failures: int, rand: Random = random.random) -> float:
        """The jittered delay after ``failures`` failed attempts (module docstring)."""
        return self.nominal(failures) * (0.5 + 0.5 * rand())

    def exhausted(self, failures: int) -> bool:
        """Whether an event that failed ``failures`` times is given up."""
        return failures >= self.max_attempts
