"""The simulated lock's flash: one small JSON file per BSLD, written atomically.

A real lock keeps its keys, counters and log in flash; the simulator keeps them in one
file per lock. This is the only module of :mod:`heslock.bsld.lock`'s core that does I/O.

Writing: the new content goes to a temporary file in the same directory, is flushed and
fsync'ed, renamed over the old file (atomic on POSIX), and the directory is fsync'ed so
the rename itself survives a power cut. A reader sees the old state or the new, never a
mix.

Reading: the file is parsed and *every* field is checked (type, range, consistency)
before anything is used. A missing, unreadable, oversized, corrupt or foreign file raises
:class:`StateFileError` with a message that says which; the lock then starts unbound with
a fresh state (never half of the old one) and a corrupt file is moved aside
(``<name>.corrupt-<n>``) so that nothing is lost and the next write does not overwrite it.

Format (version 1)::

    {"format": "heslock-bsld-state", "version": 1,
     "device_id": "F0112233445A", "profile": "secure", "factory_key": "<32 hex>",
     "keys": {"lock_key": "<hex>"|null, "key_version": 0..255, "previous_key": ...,
              "phase": "idle"|"part1"|"pending", "pending_version": 0..255,
              "pending_key": "<0, 16 or 32 hex>", "phase_since": int},
     "acceptors": {"factory": A, "current": A|null, "pending": A|null},
         A = {"floor_ts", "highest_ts", "counter_high", "counter_bitmap"}
     "event_counter": int, "wrong_attempts": int, "lockout_until": float|null,
     "settings": {"auto_relock_s", "timestamp_window_s", "sound", "passage_mode"},
     "clock": {"offset_s", "drift_ppm", "anchor"},
     "mechanism": {"bolt", "door", "battery", "tampered", "low_battery_reported"},
     "relock_at": float|null,
     "log": [[time, code, detail, source], ...]   # oldest first}

Keys are stored in hex, in the clear: this file *is* the simulated lock's flash (a real
lock would keep them in its secure element). Protect the data directory accordingly.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from heslock.bsld.config import LockConfig, LockConfigError
from heslock.bsld.log import LogCode, LogEntry, LogSource
from heslock.bsld.mechanism import MAX_CLOCK, LockClock, Mechanism, PhysicalError
from heslock.errors import LocalError
from heslock.protocol import (
    AcceptorState,
    BoltState,
    DeviceId,
    DoorState,
    InvalidDeviceId,
    LockKeyState,
    LockPhase,
    Profile,
)
from heslock.protocol.crypto import KEY_SIZE

FORMAT: Final = "heslock-bsld-state"
VERSION: Final = 1
#: A full log of 65,535 entries is about 1.6 MB of JSON; anything far larger is not ours.
MAX_STATE_BYTES: Final = 4 * 1024 * 1024
#: Corrupt files moved aside are numbered; past this many, the oldest name is reused.
MAX_QUARANTINED: Final = 100
_U32: Final = 0xFFFF_FFFF
#: Owner read/write only: state and manufacturer files hold keys.
PRIVATE_MODE: Final = 0o600


class StateFileError(LocalError):
    """The state file is missing, unreadable or invalid (the message says which)."""


class StateFileMissing(StateFileError):
    """No state file yet: a lock's first start."""


@dataclass(slots=True)
class Settings:
    """The four over-the-air settings (CONFIG frames), persisted."""

    auto_relock_s: int
    timestamp_window_s: int
    sound: int
    passage_mode: bool


@dataclass(slots=True)
class LockSnapshot:
    """Everything a lock keeps in flash."""

    device_id: DeviceId
    profile: Profile
    key_state: LockKeyState
    previous_key: bytes | None
    factory_acceptor: AcceptorState
    current_acceptor: AcceptorState | None
    pending_acceptor: AcceptorState | None
    event_counter: int
    wrong_attempts: int
    lockout_until: float | None
    settings: Settings
    clock: LockClock
    mechanism: Mechanism
    relock_at: float | None
    log: list[LogEntry] = field(default_factory=list)


# ------------------------------------------------------------------------------ encode


def _acceptor(state: AcceptorState | None) -> dict[str, int] | None:
    if state is None:
        return None
    return {
        "floor_ts": state.floor_ts,
        "highest_ts": state.highest_ts,
        "counter_high": state.counter_high,
        "counter_bitmap": state.counter_bitmap,
    }


def encode(snap: LockSnapshot) -> bytes:
    ks = snap.key_state
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "device_id": snap.device_id.hex,
        "profile": snap.profile.value,
        "factory_key": ks.factory_key.hex(),
        "keys": {
            "lock_key": ks.lock_key.hex() if ks.lock_key is not None else None,
            "key_version": ks.key_version,
            "previous_key": snap.previous_key.hex() if snap.previous_key is not None else None,
            "phase": ks.phase.value,
            "pending_version": ks.pending_version,
            "pending_key": ks.pending_key.hex(),
            "phase_since": ks.phase_since,
        },
        "acceptors": {
            "factory": _acceptor(snap.factory_acceptor),
            "current": _acceptor(snap.current_acceptor),
            "pending": _acceptor(snap.pending_acceptor),
        },
        "event_counter": snap.event_counter,
        "wrong_attempts": snap.wrong_attempts,
        "lockout_until": snap.lockout_until,
        "settings": {
            "auto_relock_s": snap.settings.auto_relock_s,
            "timestamp_window_s": snap.settings.timestamp_window_s,
            "sound": snap.settings.sound,
            "passage_mode": snap.settings.passage_mode,
        },
        "clock": {
            "offset_s": snap.clock.offset_s,
            "drift_ppm": snap.clock.drift_ppm,
            "anchor": snap.clock.anchor,
        },
        "mechanism": {
            "bolt": snap.mechanism.bolt.value,
            "door": snap.mechanism.door.value,
            "battery": snap.mechanism.battery,
            "tampered": snap.mechanism.tampered,
            "low_battery_reported": snap.mechanism.low_battery_reported,
        },
        "relock_at": snap.relock_at,
        "log": [[e.time, e.code.value, e.detail, e.source.value] for e in snap.log],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


# ------------------------------------------------------------------------------ decode


class _Reader:
    """Typed access to a JSON object; every failure names the field."""

    def __init__(self, obj: object, where: str) -> None:
        if not isinstance(obj, dict):
            raise StateFileError(f"{where or 'document'}: expected an object")
        self.obj: dict[str, object] = obj
        self.where = where

    def _get(self, name: str) -> object:
        if name not in self.obj:
            raise StateFileError(f"missing field {self.where}{name}")
        return self.obj[name]

    def _bad(self, name: str, what: str) -> StateFileError:
        return StateFileError(f"field {self.where}{name}: {what}")

    def integer(self, name: str, lo: int = 0, hi: int = _U32) -> int:
        value = self._get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self._bad(name, f"expected an integer {lo}..{hi}")
        return value

    def bigint(self, name: str, bits: int) -> int:
        return self.integer(name, 0, (1 << bits) - 1)

    def number(self, name: str, *, optional: bool = False) -> float | None:
        value = self._get(name)
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._bad(name, "expected a number")
        if not math.isfinite(value):
            raise self._bad(name, "expected a finite number")
        return float(value)

    def req_number(self, name: str) -> float:
        value = self.number(name)
        assert value is not None
        return value

    def boolean(self, name: str) -> bool:
        value = self._get(name)
        if not isinstance(value, bool):
            raise self._bad(name, "expected true or false")
        return value

    def text(self, name: str) -> str:
        value = self._get(name)
        if not isinstance(value, str):
            raise self._bad(name, "expected a string")
        return value

    def hexbytes(
        self, name: str, sizes: tuple[int, ...], *, optional: bool = False
    ) -> bytes | None:
        value = self._get(name)
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise self._bad(name, "expected hex text")
        try:
            data = bytes.fromhex(value)
        except ValueError:
            raise self._bad(name, "not hex") from None
        if len(data) not in sizes:
            raise self._bad(name, f"expected {' or '.join(map(str, sizes))} bytes")
        return data

    def sub(self, name: str, *, optional: bool = False) -> _Reader | None:
        value = self._get(name)
        if value is None and optional:
            return None
        return _Reader(value, f"{self.where}{name}.")

    def req_sub(self, name: str) -> _Reader:
        sub = self.sub(name)
        assert sub is not None
        return sub

    def items(self, name: str) -> list[object]:
        value = self._get(name)
        if not isinstance(value, list):
            raise self._bad(name, "expected a list")
        return value


def _read_acceptor(r: _Reader | None) -> AcceptorState | None:
    if r is None:
        return None
    return AcceptorState(
        floor_ts=r.integer("floor_ts"),
        highest_ts=r.integer("highest_ts"),
        counter_high=r.integer("counter_high"),
        counter_bitmap=r.bigint("counter_bitmap", 64),
    )


def _read_log(items: list[object], capacity: int) -> list[LogEntry]:
    if len(items) > capacity:
        raise StateFileError(f"log holds {len(items)} entries, capacity is {capacity}")
    entries = []
    for i, item in enumerate(items):
        if (
            not isinstance(item, list)
            or len(item) != 4
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in item)
        ):
            raise StateFileError(f"log entry {i}: expected [time, code, detail, source]")
        time_, code, detail, source = item
        try:
            entries.append(LogEntry(time_, LogCode(code), detail, LogSource(source)))
        except ValueError as exc:
            raise StateFileError(f"log entry {i}: {exc}") from None
        if not 0 <= time_ <= MAX_CLOCK:
            raise StateFileError(f"log entry {i}: time out of range")
    return entries


def _read_keys(r: _Reader, factory_key: bytes) -> tuple[LockKeyState, bytes | None]:
    lock_key = r.hexbytes("lock_key", (KEY_SIZE,), optional=True)
    previous = r.hexbytes("previous_key", (KEY_SIZE,), optional=True)
    try:
        phase = LockPhase(r.text("phase"))
    except ValueError:
        raise StateFileError("field keys.phase: unknown phase") from None
    pending = r.hexbytes("pending_key", (0, 8, KEY_SIZE))
    assert pending is not None
    state = LockKeyState(
        factory_key=factory_key,
        lock_key=lock_key,
        key_version=r.integer("key_version", 0, 255),
        phase=phase,
        pending_version=r.integer("pending_version", 0, 255),
        pending_key=pending,
        phase_since=r.integer("phase_since"),
    )
    expected_pending = {LockPhase.IDLE: 0, LockPhase.PART1: 8, LockPhase.PENDING: KEY_SIZE}
    if len(pending) != expected_pending[phase]:
        raise StateFileError(f"keys: a {phase.value} negotiation holds a wrong-size pending key")
    if (lock_key is None) != (state.key_version == 0):
        raise StateFileError("keys: key_version must be 0 exactly when unbound")
    if lock_key is None and previous is not None:
        raise StateFileError("keys: an unbound lock keeps no previous key")
    return state, previous


def decode(data: bytes) -> LockSnapshot:
    """Parse and validate a state file's bytes (see module docstring)."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise StateFileError(f"not valid JSON ({exc.__class__.__name__})") from None
    r = _Reader(doc, "")
    if r.obj.get("format") != FORMAT:
        raise StateFileError(f"not a {FORMAT} file")
    if r.obj.get("version") != VERSION:
        raise StateFileError(f"unsupported version {r.obj.get('version')!r} (expected {VERSION})")
    try:
        device_id = DeviceId(r.text("device_id"))
        profile = Profile(r.text("profile"))
    except (InvalidDeviceId, ValueError) as exc:
        raise StateFileError(f"device_id/profile: {exc}") from None
    factory_key = r.hexbytes("factory_key", (KEY_SIZE,))
    assert factory_key is not None
    key_state, previous = _read_keys(r.req_sub("keys"), factory_key)
    acc = r.req_sub("acceptors")
    factory_acc = _read_acceptor(acc.req_sub("factory"))
    assert factory_acc is not None
    current_acc = _read_acceptor(acc.sub("current", optional=True))
    pending_acc = _read_acceptor(acc.sub("pending", optional=True))
    if (current_acc is None) != (key_state.lock_key is None):
        raise StateFileError("acceptors.current must exist exactly when bound")
    if (pending_acc is None) != (key_state.phase is not LockPhase.PENDING):
        raise StateFileError("acceptors.pending must exist exactly while a key is pending")
    s = r.req_sub("settings")
    settings = Settings(
        s.integer("auto_relock_s", 0, 0xFFFF),
        s.integer("timestamp_window_s", 0, 0xFFFF),
        s.integer("sound", 0, 0xFF),
        s.boolean("passage_mode"),
    )
    try:
        LockConfig(
            auto_relock_s=settings.auto_relock_s,
            timestamp_window_s=settings.timestamp_window_s,
            sound=settings.sound,
        )
        c = r.req_sub("clock")
        clock = LockClock(
            c.req_number("offset_s"), c.req_number("drift_ppm"), c.req_number("anchor")
        )
    except (LockConfigError, PhysicalError) as exc:
        raise StateFileError(f"settings/clock: {exc}") from None
    m = r.req_sub("mechanism")
    try:
        mech = Mechanism(
            BoltState(m.integer("bolt", 0, 0xFF)),
            DoorState(m.integer("door", 0, 0xFF)),
            m.integer("battery", 0, 100),
            m.boolean("tampered"),
            m.boolean("low_battery_reported"),
        )
    except ValueError as exc:
        raise StateFileError(f"mechanism: {exc}") from None
    return LockSnapshot(
        device_id=device_id,
        profile=profile,
        key_state=key_state,
        previous_key=previous,
        factory_acceptor=factory_acc,
        current_acceptor=current_acc,
        pending_acceptor=pending_acc,
        event_counter=r.integer("event_counter"),
        wrong_attempts=r.integer("wrong_attempts", 0, 0xFFFF),
        lockout_until=r.number("lockout_until", optional=True),
        settings=settings,
        clock=clock,
        mechanism=mech,
        relock_at=r.number("relock_at", optional=True),
        log=_read_log(r.items("log"), 0xFFFF),
    )


# ------------------------------------------------------------------------------ file I/O


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file, flush, fsync, rename, fsync directory."""
    directory = path.parent
    tmp = directory / f".{path.name}.{os.getpid()}.tmp"
    try:
        # 0o600: the file holds keys (the lock's flash, or a maker's factory keys).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_state(path: Path) -> LockSnapshot:
    """Read and validate ``path``. Raises :class:`StateFileError` (or its Missing)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        raise StateFileMissing(f"no state file at {path}") from None
    except OSError as exc:
        raise StateFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_STATE_BYTES:
        raise StateFileError(f"{path} is larger than {MAX_STATE_BYTES} bytes")
    try:
        return decode(data)
    except StateFileError as exc:
        raise StateFileError(f"{path}: {exc}") from None


def quarantine(path: Path) -> Path | None:
    """Move a bad state file aside so the next write does not destroy it."""
    for n in range(1, MAX_QUARANTINED + 1):
        target = path.with_name(f"{path.name}.corrupt-{n}")
        if not target.exists():
            break
    try:
        os.replace(path, target)
    except OSError:
        return None
    return target
