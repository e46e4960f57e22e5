"""What a simulated BSLD is (:class:`LockIdentity`) and how it is set up (:class:`LockConfig`).

The identity is fixed at manufacture: the 6-byte device id the DDMS knows the lock by
(ISO/IEC 14543-5-104, "MAC id"), the maker and model, the frame profile, the factory key
and the firmware version. The configuration holds the lock's limits: some are simulator
parameters (lockout, registration window, log size), four are settings the RAS changes
over the air with CONFIG frames (auto-relock, timestamp window, sound, passage mode;
docs/protocol.md, "CONFIG").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from heslock.errors import UsageError
from heslock.protocol import DeviceId, Profile
from heslock.protocol.crypto import KEY_SIZE

#: ISO/IEC 14543-5-104: a registration window lasts at most 15 minutes.
MAX_REGISTRATION_WINDOW_S: Final = 900
#: Real locks keep a few hundred entries; the issue asks for at least 500.
MIN_LOG_CAPACITY: Final = 500
#: LOG_COUNT reports capacity as uint16.
MAX_LOG_CAPACITY: Final = 0xFFFF
#: CONFIG/TIMESTAMP_WINDOW range (codes.py): under 5 s a relayed frame misses it, over
#: 300 s a captured frame stays usable for too long.
MIN_TIMESTAMP_WINDOW_S: Final = 5
MAX_TIMESTAMP_WINDOW_S: Final = 300
#: An auto-relock later than an hour is a forgotten door, not a relock: use passage mode.
MAX_AUTO_RELOCK_S: Final = 3600
#: CONFIG/SOUND levels: 0 off, 1 low, 2 high.
MAX_SOUND_LEVEL: Final = 2
#: WRONG_ATTEMPTS reports the count in one byte.
MAX_WRONG_ATTEMPT_LIMIT: Final = 255
#: A back-off longer than a day is a denial of service on the owner.
MAX_LOCKOUT_S: Final = 86_400
#: The retry period must stay inside the replay window, or a retry would be STALE anyway.
MAX_RETRY_S: Final = 60
#: Maker and model travel in the BLE advertisement: short printable ASCII.
MAX_NAME_LENGTH: Final = 24
#: Recognised BLE core versions of the maker profiles (issue 3: 4.0, 4.2, 5.0).
BLE_VERSIONS: Final = ("4.0", "4.2", "5.0")


class LockConfigError(UsageError, ValueError):
    """A lock identity or configuration value out of range (the message names it)."""


def _printable(text: str, what: str) -> str:
    if not text or len(text) > MAX_NAME_LENGTH or not text.isascii() or not text.isprintable():
        raise LockConfigError(f"{what} must be 1..{MAX_NAME_LENGTH} printable ASCII characters")
    return text


@dataclass(frozen=True)
class LockIdentity:
    """A lock's factory data (the manufacturer file of :mod:`heslock.bsld.manufacturer`)."""

    device_id: DeviceId
    maker: str
    model: str
    profile: Profile
    factory_key: bytes
    firmware: tuple[int, int, int, int] = (1, 0, 0, 0)
    ble_version: str = "4.2"

    def __post_init__(self) -> None:
        if not isinstance(self.device_id, DeviceId):
            raise LockConfigError("device_id must be a DeviceId")
        _printable(self.maker, "maker")
        _printable(self.model, "model")
        if not isinstance(self.profile, Profile):
            raise LockConfigError("profile must be a Profile")
        if not isinstance(self.factory_key, bytes) or len(self.factory_key) != KEY_SIZE:
            raise LockConfigError(f"the factory key is {KEY_SIZE} bytes")
        if len(self.firmware) != 4 or not all(0 <= part <= 0xFF for part in self.firmware):
            raise LockConfigError("firmware is four numbers 0..255 (major, minor, patch, build)")
        if self.ble_version not in BLE_VERSIONS:
            raise LockConfigError(f"ble_version is one of {', '.join(BLE_VERSIONS)}")

    def __repr__(self) -> str:
        # Never print the factory key (STYLE.md: no secret in a log).
        return (
            f"LockIdentity({self.device_id}, {self.maker!r}, {self.model!r}, "
            f"{self.profile.value}, firmware={self.firmware}, ble={self.ble_version})"
        )


@dataclass
class LockConfig:
    """Limits and settings of one lock. Validated on creation; the lock keeps its own copy.

    ``auto_relock_s``, ``timestamp_window_s``, ``sound`` and ``passage_mode`` are the
    over-the-air settings: the RAS changes them with CONFIG/SET and they are persisted
    (a restored lock keeps the RAS's values). The others are simulator parameters.
    """

    #: Consecutive unauthenticated frames (garbage, wrong key) before the lock backs off.
    wrong_attempt_limit: int = 5
    #: How long the lock refuses every frame with LOCKED_OUT after the limit.
    lockout_s: float = 60.0
    #: How long the registration button keeps the factory key usable (at most 15 min).
    registration_window_s: float = float(MAX_REGISTRATION_WINDOW_S)
    #: The BLE peripheral drops a central idle this long (used by heslock.bsld.peripheral).
    idle_disconnect_s: float = 30.0
    #: Relock this long after an unlock (0 = off); waits for the door to close.
    auto_relock_s: int = 0
    #: Accept frames stamped within +/- this many seconds of the lock's clock.
    timestamp_window_s: int = 30
    #: A retried identical frame this soon after the first gets the first answer again.
    retry_s: int = 10
    #: Entries of the ring-buffer event log.
    log_capacity: int = MIN_LOG_CAPACITY
    #: Beeper level 0..2 (stored and reported; the simulator makes no sound).
    sound: int = 1
    #: Passage mode: the bolt stays unlocked, remote LOCK and auto-relock are refused.
    passage_mode: bool = False
    #: Below this battery percent the lock raises LOW_BATTERY and sets the status flag.
    low_battery_percent: int = 20
    #: Below this the motor may stall half-way: remote actuation is refused (LOW_BATTERY).
    min_actuation_percent: int = 5
    #: Accepted frames remembered per key for duplicate/replay detection.
    replay_cache_size: int = 128

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        checks: list[tuple[bool, str]] = [
            (
                1 <= self.wrong_attempt_limit <= MAX_WRONG_ATTEMPT_LIMIT,
                f"wrong_attempt_limit is 1..{MAX_WRONG_ATTEMPT_LIMIT}",
            ),
            (0 < self.lockout_s <= MAX_LOCKOUT_S, f"lockout_s is over 0, at most {MAX_LOCKOUT_S}"),
            (
                0 < self.registration_window_s <= MAX_REGISTRATION_WINDOW_S,
                f"registration_window_s is over 0, at most {MAX_REGISTRATION_WINDOW_S}",
            ),
            (self.idle_disconnect_s > 0, "idle_disconnect_s is over 0"),
            (
                0 <= self.auto_relock_s <= MAX_AUTO_RELOCK_S,
                f"auto_relock_s is 0..{MAX_AUTO_RELOCK_S}",
            ),
            (
                MIN_TIMESTAMP_WINDOW_S <= self.timestamp_window_s <= MAX_TIMESTAMP_WINDOW_S,
                f"timestamp_window_s is {MIN_TIMESTAMP_WINDOW_S}..{MAX_TIMESTAMP_WINDOW_S}",
            ),
            (1 <= self.retry_s <= MAX_RETRY_S, f"retry_s is 1..{MAX_RETRY_S}"),
            (
                MIN_LOG_CAPACITY <= self.log_capacity <= MAX_LOG_CAPACITY,
                f"log_capacity is {MIN_LOG_CAPACITY}..{MAX_LOG_CAPACITY}",
            ),
            (0 <= self.sound <= MAX_SOUND_LEVEL, f"sound is 0..{MAX_SOUND_LEVEL}"),
            (
                0 <= self.min_actuation_percent <= self.low_battery_percent <= 100,
                "0 <= min_actuation_percent <= low_battery_percent <= 100",
            ),
            (self.replay_cache_size >= 1, "replay_cache_size is at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise LockConfigError(message)
