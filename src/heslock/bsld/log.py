"""The BSLD's event log: a ring buffer the RAS reads with QUERY frames.

Like a real lock's, the log has a fixed number of entries (at least 500); when it is full
the oldest entry gives way. Each entry is four facts, exactly what the QUERY frames carry
(docs/protocol.md, "QUERY")::

    LOG_COUNT          -> entries held (uint16 BE), capacity (uint16 BE)
    LOG_ENTRY index    -> code, detail, source, 0          (index 0 = newest)
    LOG_TIME  index    -> time of the entry, uint32 BE (the lock's clock)

Codes 0x01..0x09 are the lock-originated events (:class:`heslock.protocol.EventType`,
same numbers); codes from 0x20 are things only the log records (binding, settings,
refused frames, ...). Every refused frame is logged with its reason code (ARCHITECTURE.md,
"Acceptance rules"), but at most :data:`REFUSALS_LOGGED_PER_MINUTE` per minute: beyond
that a single REFUSALS_SUPPRESSED entry counts the rest, so a flood of replayed frames
cannot push the real history out of the ring.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from heslock.protocol.codes import LogCode, LogSource

__all__ = ["EventLog", "LogCode", "LogEntry", "LogSource", "RefusalLimiter"]

#: Refusals logged one by one per minute; the rest are counted in one entry.
REFUSALS_LOGGED_PER_MINUTE: Final = 10
#: The period of that limit, seconds (host time).
REFUSAL_PERIOD_S: Final = 60.0
#: Detail bytes saturate here.
MAX_DETAIL: Final = 0xFF


@dataclass(frozen=True, slots=True)
class LogEntry:
    time: int  #: the lock's clock, Unix seconds
    code: LogCode
    detail: int
    source: LogSource

    def __post_init__(self) -> None:
        if not 0 <= self.detail <= MAX_DETAIL:
            raise ValueError("detail is one byte")

    def entry_args(self) -> bytes:
        """The args of a LOG_ENTRY response."""
        return bytes((self.code, self.detail, self.source, 0))


class EventLog:
    """Ring buffer of :class:`LogEntry`, newest last internally, newest = index 0 outside."""

    def __init__(self, capacity: int, entries: Iterable[LogEntry] = ()) -> None:
        self.capacity = capacity
        self._entries: deque[LogEntry] = deque(entries, maxlen=capacity)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[LogEntry]:
        """Oldest first (the order they are persisted in)."""
        return iter(self._entries)

    def append(self, entry: LogEntry) -> None:
        self._entries.append(entry)

    def newest(self, index: int) -> LogEntry:
        """Entry ``index`` counted from the newest (0). IndexError when not held."""
        if not 0 <= index < len(self._entries):
            raise IndexError(index)
        return self._entries[-1 - index]


@dataclass(slots=True)
class RefusalLimiter:
    """Decides which refusals get an entry of their own (see module docstring)."""

    period_start: float = 0.0
    period_end: float = 0.0
    logged: int = 0
    suppressed: int = 0

    def admit(self, host_time: float) -> tuple[bool, int]:
        """Count one refusal. Returns (log it, suppressed count of the period that ended)."""
        flushed = self.roll(host_time)
        if self.logged < REFUSALS_LOGGED_PER_MINUTE:
            self.logged += 1
            return True, flushed
        self.suppressed += 1
        return False, flushed

    def roll(self, host_time: float) -> int:
        """Start a new period if the current one is over; return what it suppressed."""
        # Compared with stored bounds (not a difference) so that tick() at deadline()
        # always rolls: no float rounding can leave a deadline that never fires.
        if self.period_start <= host_time < self.period_end:
            return 0
        flushed = self.suppressed
        self.period_start, self.period_end = host_time, host_time + REFUSAL_PERIOD_S
        self.logged, self.suppressed = 0, 0
        return flushed

    def deadline(self) -> float | None:
        """When :meth:`roll` has a count to flush (None: nothing suppressed)."""
        return self.period_end if self.suppressed else None
