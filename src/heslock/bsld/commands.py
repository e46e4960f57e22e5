"""Execution of the accepted TIME, OPERATION, CONFIG and QUERY commands of a bound BSLD.

:func:`execute` returns the response's four argument bytes or raises :class:`Refusal`
with the reason code of the ERROR answer. Argument layouts are those of
:mod:`heslock.protocol.codes` (docs/protocol.md, "Commands")::

    command                      request args            response args
    TIME GET                     0                       lock clock u32 (the challenge)
    TIME SET                     challenge u32           new lock clock u32
                                 (the timestamp is the new clock; the acceptor checked
                                 the challenge: acceptance rule 6)
    OPERATION UNLOCK/LOCK/       0                       StatusArgs
      STATUS/UNLATCH
    CONFIG GET <type>            0                       current value
    CONFIG SET AUTO_RELOCK       u16 s (0..3600), 0      value
    CONFIG SET TIMESTAMP_WINDOW  u16 s (5..300), 0       value
    CONFIG SET SOUND             level 0..2, 0, 0, 0     value
    CONFIG SET PASSAGE_MODE      0/1, 0, 0, 0            value
    QUERY BATTERY                0                       percent, mV u16, flags
    QUERY FIRMWARE               0                       major, minor, patch, build
    QUERY LOG_COUNT              0                       held u16, capacity u16
    QUERY LOG_ENTRY              index u16 (0 newest), 0 code, detail, source, 0
    QUERY LOG_TIME               index u16, 0            entry time u32

Unused argument bytes must be zero (BAD_VALUE otherwise), as must out-of-range values.
Actuation (UNLOCK, LOCK, UNLATCH, PASSAGE_MODE on while locked) is refused with JAMMED
when the bolt is jammed, LOW_BATTERY under ``min_actuation_percent``, and LOCK with
PASSAGE_MODE while passage mode is on. Nothing changes before every check has passed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from heslock.bsld.config import (
    MAX_AUTO_RELOCK_S,
    MAX_SOUND_LEVEL,
    MAX_TIMESTAMP_WINDOW_S,
    MIN_TIMESTAMP_WINDOW_S,
)
from heslock.bsld.log import LogCode, LogSource
from heslock.bsld.mechanism import BoltInput, battery_millivolts
from heslock.protocol import (
    BoltState,
    Cmd,
    ConfigOp,
    ConfigType,
    EventType,
    OpBody,
    OperationOp,
    QueryType,
    ReasonCode,
    TimeOp,
)
from heslock.protocol.frame import Frame
from heslock.protocol.messages import read_u16, u16, u32

if TYPE_CHECKING:
    from heslock.bsld.lock import SimulatedLock


class Refusal(Exception):
    """A command that passed acceptance but cannot be executed."""

    def __init__(self, reason: ReasonCode, message: str = "") -> None:
        self.reason = reason
        super().__init__(message or reason.name)


def _zero(data: bytes) -> None:
    if any(data):
        raise Refusal(ReasonCode.BAD_VALUE, "unused argument bytes must be zero")


def execute(lock: SimulatedLock, frame: Frame, body: OpBody, host_time: float) -> bytes:
    """Run one accepted command of a bound lock; return the response args."""
    group = Cmd(frame.group)
    if group is Cmd.TIME:
        return _time(lock, frame, body, host_time)
    if group is Cmd.OPERATION:
        return _operation(lock, body, host_time)
    if group is Cmd.CONFIG:
        return _config(lock, ConfigType(frame.type), body, host_time)
    if group is Cmd.QUERY:
        return _query(lock, QueryType(frame.type), body, host_time)
    # decode_body admits only COMMAND_TABLE entries; KEY frames never come here.
    raise Refusal(ReasonCode.UNKNOWN_COMMAND, f"no handler for {group.name}")


def _time(lock: SimulatedLock, frame: Frame, body: OpBody, host_time: float) -> bytes:
    if TimeOp(body.op) is TimeOp.GET:
        _zero(body.args)
    else:
        lock.clock.set(frame.timestamp, host_time)
        lock._log(LogCode.TIME_SET, 0, LogSource.REMOTE, host_time)
    return u32(lock.clock.now(host_time))


def _check_actuation(lock: SimulatedLock) -> None:
    if lock.mechanism.bolt is BoltState.JAMMED:
        raise Refusal(ReasonCode.JAMMED)
    if lock.mechanism.battery < lock.config.min_actuation_percent:
        raise Refusal(ReasonCode.LOW_BATTERY)


def _operation(lock: SimulatedLock, body: OpBody, host_time: float) -> bytes:
    _zero(body.args)
    op = OperationOp(body.op)
    if op is not OperationOp.STATUS:
        _check_actuation(lock)
        if op is OperationOp.LOCK and lock.config.passage_mode:
            raise Refusal(ReasonCode.PASSAGE_MODE)
        motion = BoltInput.MOTOR_LOCK if op is OperationOp.LOCK else BoltInput.MOTOR_UNLOCK
        lock.mechanism.move(motion)
        lock._arm_relock(host_time)
        lock._raise(EventType.REMOTE_OPERATION, op, host_time, LogSource.REMOTE)
    return bytes(lock._status_args(host_time))


def _config_value(lock: SimulatedLock, kind: ConfigType) -> bytes:
    cfg = lock.config
    if kind is ConfigType.AUTO_RELOCK:
        return u16(cfg.auto_relock_s)
    if kind is ConfigType.TIMESTAMP_WINDOW:
        return u16(cfg.timestamp_window_s)
    if kind is ConfigType.SOUND:
        return bytes((cfg.sound,))
    return bytes((int(cfg.passage_mode),))


def _config(lock: SimulatedLock, kind: ConfigType, body: OpBody, host_time: float) -> bytes:
    a = body.args
    if ConfigOp(body.op) is ConfigOp.GET:
        _zero(a)
        return _config_value(lock, kind)
    cfg = lock.config
    if kind in (ConfigType.AUTO_RELOCK, ConfigType.TIMESTAMP_WINDOW):
        _zero(a[2:])
        value = read_u16(a)
        if kind is ConfigType.AUTO_RELOCK:
            if value > MAX_AUTO_RELOCK_S:
                raise Refusal(ReasonCode.BAD_VALUE, f"auto-relock is 0..{MAX_AUTO_RELOCK_S} s")
            cfg.auto_relock_s = value
            lock._arm_relock(host_time)
        else:
            if not MIN_TIMESTAMP_WINDOW_S <= value <= MAX_TIMESTAMP_WINDOW_S:
                raise Refusal(ReasonCode.BAD_VALUE, "timestamp window out of range")
            cfg.timestamp_window_s = value
            lock._apply_window()
    else:
        _zero(a[1:])
        level = a[0]
        if kind is ConfigType.SOUND:
            if level > MAX_SOUND_LEVEL:
                raise Refusal(ReasonCode.BAD_VALUE, f"sound is 0..{MAX_SOUND_LEVEL}")
            cfg.sound = level
        else:
            _passage_mode(lock, level, host_time)
    lock._log(LogCode.CONFIG_SET, kind, LogSource.REMOTE, host_time)
    return _config_value(lock, kind)


def _passage_mode(lock: SimulatedLock, level: int, host_time: float) -> None:
    if level > 1:
        raise Refusal(ReasonCode.BAD_VALUE, "passage mode is 0 or 1")
    on = bool(level)
    if on and lock.mechanism.bolt is not BoltState.UNLOCKED:
        _check_actuation(lock)  # passage mode means the bolt is retracted: move it now
        lock.mechanism.move(BoltInput.MOTOR_UNLOCK)
        lock.config.passage_mode = True
        lock._raise(EventType.REMOTE_OPERATION, OperationOp.UNLOCK, host_time, LogSource.REMOTE)
    lock.config.passage_mode = on
    lock._arm_relock(host_time)


def _query(lock: SimulatedLock, kind: QueryType, body: OpBody, host_time: float) -> bytes:
    a = body.args
    if kind in (QueryType.LOG_ENTRY, QueryType.LOG_TIME):
        _zero(a[2:])
        index = read_u16(a)
        try:
            entry = lock.log.newest(index)
        except IndexError:
            raise Refusal(ReasonCode.BAD_VALUE, f"the log holds {len(lock.log)}") from None
        return entry.entry_args() if kind is QueryType.LOG_ENTRY else u32(entry.time)
    _zero(a)
    if kind is QueryType.BATTERY:
        percent = lock.mechanism.battery
        flags = lock._status_args(host_time).flags
        return bytes((percent,)) + u16(battery_millivolts(percent)) + bytes((flags,))
    if kind is QueryType.FIRMWARE:
        return bytes(lock.identity.firmware)
    return u16(len(lock.log)) + u16(lock.log.capacity)
