"""The physical parts of a simulated BSLD: bolt, door sensor, battery and real-time clock.

Theory of operation
-------------------
The bolt is a small state machine driven by two kinds of input: the *motor* (remote
commands, auto-relock) and a *person* (the knob, jamming it, clearing a jam). The
table below is complete: a pair absent from it is refused, by :class:`BoltRefused` for
the motor (the lock answers JAMMED) and by :class:`PhysicalError` for a person (the
simulator's user asked for something a real lock cannot do)::

    state      input          next       note
    LOCKED     MOTOR_UNLOCK   UNLOCKED
    UNLOCKED   MOTOR_UNLOCK   UNLOCKED   already there: no movement
    LOCKED     MOTOR_LOCK     LOCKED     already there: no movement
    UNLOCKED   MOTOR_LOCK     LOCKED
    LOCKED     KNOB_UNLOCK    UNLOCKED
    UNLOCKED   KNOB_LOCK      LOCKED
    LOCKED     KNOB_LOCK      LOCKED     turning to where it is: nothing happens
    UNLOCKED   KNOB_UNLOCK    UNLOCKED
    LOCKED     JAM            JAMMED     something blocks the bolt
    UNLOCKED   JAM            JAMMED
    JAMMED     CLEAR_LOCKED   LOCKED     a person frees the bolt and leaves it thrown
    JAMMED     CLEAR_UNLOCKED UNLOCKED   ... or retracted

The clock is the lock's own RTC: it runs at the host's rate times ``1 + drift_ppm / 1e6``
from an offset set at manufacture or by TIME/SET, and restarts from a fixed epoch when the
battery is replaced (real locks lose their RTC with power). Timestamps the lock checks
and stamps come from this clock, never from the host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Final

from heslock.errors import UsageError
from heslock.protocol import BoltState, DoorState

#: Where a powered-up RTC starts counting after a battery swap (2024-01-01T00:00:00Z, the
#: standard's year): any frame from a correct RAS is then STALE until TIME/SET.
CLOCK_RESET_EPOCH: Final = 1_704_067_200
#: The timestamp field is uint32 (frame.py): the clock is clamped to what it can carry.
MAX_CLOCK: Final = 0xFFFF_FFFF
#: Battery voltage model: four AA cells, 6.0 V fresh, 4.4 V where the motor gives up.
BATTERY_FULL_MV: Final = 6000
BATTERY_EMPTY_MV: Final = 4400
#: A drift of 1e6 ppm would stop the clock (rate 0); real quartz drifts by tens of ppm.
MAX_DRIFT_PPM: Final = 1_000_000


class PhysicalError(UsageError):
    """The simulator's user asked for something the physical lock cannot do."""


class BoltRefused(Exception):
    """The motor cannot move the bolt (it is jammed). Internal to the lock."""


class BoltInput(Enum):
    MOTOR_UNLOCK = "motor-unlock"
    MOTOR_LOCK = "motor-lock"
    KNOB_UNLOCK = "knob-unlock"
    KNOB_LOCK = "knob-lock"
    JAM = "jam"
    CLEAR_LOCKED = "clear-locked"
    CLEAR_UNLOCKED = "clear-unlocked"

    @property
    def by_motor(self) -> bool:
        return self in (BoltInput.MOTOR_UNLOCK, BoltInput.MOTOR_LOCK)


_L, _U, _J = BoltState.LOCKED, BoltState.UNLOCKED, BoltState.JAMMED

#: The bolt's transition table (see module docstring).
BOLT_TABLE: Final[dict[tuple[BoltState, BoltInput], BoltState]] = {
    (_L, BoltInput.MOTOR_UNLOCK): _U,
    (_U, BoltInput.MOTOR_UNLOCK): _U,
    (_L, BoltInput.MOTOR_LOCK): _L,
    (_U, BoltInput.MOTOR_LOCK): _L,
    (_L, BoltInput.KNOB_UNLOCK): _U,
    (_U, BoltInput.KNOB_LOCK): _L,
    (_L, BoltInput.KNOB_LOCK): _L,
    (_U, BoltInput.KNOB_UNLOCK): _U,
    (_L, BoltInput.JAM): _J,
    (_U, BoltInput.JAM): _J,
    (_J, BoltInput.CLEAR_LOCKED): _L,
    (_J, BoltInput.CLEAR_UNLOCKED): _U,
}


def bolt_next(state: BoltState, event: BoltInput) -> BoltState:
    """Apply one input to the bolt, or refuse it (see module docstring)."""
    target = BOLT_TABLE.get((state, event))
    if target is not None:
        return target
    if event.by_motor:
        raise BoltRefused(f"bolt is {state.name}")
    raise PhysicalError(f"cannot {event.value} a bolt that is {state.name.lower()}")


def battery_millivolts(percent: int) -> int:
    """The voltage a BATTERY query reports for a charge (linear model of 4 x AA)."""
    return BATTERY_EMPTY_MV + (BATTERY_FULL_MV - BATTERY_EMPTY_MV) * percent // 100


@dataclass(slots=True)
class Mechanism:
    """Bolt, door sensor, battery and the tamper switch of one lock."""

    bolt: BoltState = BoltState.LOCKED
    door: DoorState = DoorState.CLOSED
    battery: int = 100
    #: Latched by the tamper switch; cleared only by a factory reset (a service visit).
    tampered: bool = False
    #: Set when the battery fell below the warning level, so the event is raised once.
    low_battery_reported: bool = False

    def move(self, event: BoltInput) -> bool:
        """Apply ``event``; return True if the bolt changed state."""
        before = self.bolt
        self.bolt = bolt_next(before, event)
        return self.bolt is not before


@dataclass(slots=True)
class LockClock:
    """The lock's RTC (see module docstring). Times are Unix seconds.

    ``lock time = host + offset_s + (host - anchor) * drift_ppm / 1e6``
    """

    offset_s: float = 0.0
    drift_ppm: float = 0.0
    anchor: float = 0.0

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.offset_s, self.drift_ppm, self.anchor)):
            raise PhysicalError("clock parameters must be finite numbers")
        if abs(self.drift_ppm) >= MAX_DRIFT_PPM:
            raise PhysicalError("a clock drift beyond 1e6 ppm stops or reverses time")

    def exact(self, host_time: float) -> float:
        return host_time + self.offset_s + (host_time - self.anchor) * self.drift_ppm / 1e6

    def now(self, host_time: float) -> int:
        """The lock's time in whole seconds, as frames carry it."""
        return min(max(math.floor(self.exact(host_time)), 0), MAX_CLOCK)

    def set(self, lock_time: float, host_time: float) -> None:
        """TIME/SET: from ``host_time`` on, the clock reads ``lock_time`` (drift goes on)."""
        self.anchor = host_time
        self.offset_s = lock_time - host_time

    def reset(self, host_time: float) -> None:
        """Power loss: the RTC restarts from :data:`CLOCK_RESET_EPOCH`."""
        self.set(CLOCK_RESET_EPOCH, host_time)

    def host_time_of(self, lock_time: float, host_time: float) -> float:
        """When (host time) the lock clock reads ``lock_time``, seen from ``host_time``."""
        rate = 1 + self.drift_ppm / 1e6
        return host_time + (lock_time - self.exact(host_time)) / rate
