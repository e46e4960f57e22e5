""":class:`LockStatus`: a BSLD's state as others see it (STATUS answers, events, adverts).

The BLE peripheral builds the advertisement's bound flag and battery from it; every
OPERATION response and every EVENT frame carries its :meth:`~LockStatus.args`
(:class:`heslock.protocol.StatusArgs`: bolt, door, battery, StatusFlag bits).
"""

from __future__ import annotations

from dataclasses import dataclass

from heslock.protocol import BoltState, DoorState, Profile, StatusArgs, StatusFlag


@dataclass(frozen=True, slots=True)
class LockStatus:
    bound: bool
    bolt: BoltState
    door: DoorState
    battery: int  #: percent
    passage_mode: bool
    registration_open: bool  #: factory-key registration frames are accepted now
    locked_out: bool  #: too many refused frames: every frame gets LOCKED_OUT
    key_version: int  #: 0 when unbound
    tampered: bool
    low_battery: bool
    lock_time: int  #: the lock's own clock, Unix seconds
    profile: Profile
    event_counter: int  #: the last event counter used under the current key

    @property
    def flags(self) -> int:
        """The StatusFlag bits of this state."""
        bits = {
            StatusFlag.PASSAGE_MODE: self.passage_mode,
            StatusFlag.BOUND: self.bound,
            StatusFlag.LOW_BATTERY: self.low_battery,
            StatusFlag.TAMPERED: self.tampered,
            StatusFlag.REGISTRATION_OPEN: self.registration_open,
        }
        return sum(int(flag) for flag, on in bits.items() if on)

    def args(self) -> StatusArgs:
        return StatusArgs(self.bolt, self.door, self.battery, self.flags)
