"""Code tables of the heslock lock protocol (docs/protocol.md is the normative text).

ISO/IEC 14543-5-104 fixes the 16-byte command frame (cmd, type, value, check, timestamp)
and gives one example: cmd ``0x03``, type ``0x01``, value = operation code. The standard's
full table is not public, so this module *is* heslock's table. Each command group below
is one ``Cmd``; within a group the ``type`` byte names the sub-command, and ``value[0]``
(the "op" byte) names the operation where a group has several.

Direction is in the cmd byte: every frame the lock sends (responses, events, errors) has
:data:`RESPONSE_BIT` set, so a reflected lock frame is never a valid command.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

#: Set in ``cmd`` on every lock-to-RAS frame. A command never has it.
RESPONSE_BIT: Final = 0x80


class Cmd(IntEnum):
    """Command groups (the ``cmd`` byte without :data:`RESPONSE_BIT`)."""

    KEY = 0x01  #: key management: stage-a key parts, stage-b commit (and rotation)
    TIME = 0x02  #: the lock's clock
    OPERATION = 0x03  #: bolt operations; the standard's own example group
    CONFIG = 0x04  #: settings (auto-relock, timestamp window, sound, passage mode)
    QUERY = 0x05  #: read-only queries (battery, firmware, log)
    EVENT = 0x06  #: lock-originated events (always sent with RESPONSE_BIT)
    ERROR = 0x0F  #: error responses (always sent with RESPONSE_BIT); type = ReasonCode


class KeyType(IntEnum):
    """Types of :attr:`Cmd.KEY`."""

    PART_1 = 0x01  #: stage a, key bytes 0..7 (key layout)
    PART_2 = 0x02  #: stage a, key bytes 8..15 (key layout); answered under the new key
    COMMIT = 0x03  #: stage b, under the new key (op layout, args[0] = key version)


class TimeType(IntEnum):
    """Types of :attr:`Cmd.TIME`."""

    CLOCK = 0x01


class TimeOp(IntEnum):
    GET = 0x01  #: response args: lock clock, uint32 BE
    SET = 0x02  #: the frame's own timestamp becomes the lock's clock


class OperationType(IntEnum):
    """Types of :attr:`Cmd.OPERATION` (the actuator)."""

    BOLT = 0x01


class OperationOp(IntEnum):
    """Op codes of :attr:`OperationType.BOLT` (value[0])."""

    UNLOCK = 0x01
    LOCK = 0x02
    STATUS = 0x03
    UNLATCH = 0x04  #: unlock and pull the latch (door can be pushed open)


class ConfigType(IntEnum):
    """Types of :attr:`Cmd.CONFIG`: one setting each."""

    AUTO_RELOCK = 0x01  #: args[0:2] seconds, uint16 BE; 0 = off
    TIMESTAMP_WINDOW = 0x02  #: args[0:2] seconds, uint16 BE; 5..300
    SOUND = 0x03  #: args[0] 0 = off, 1 = low, 2 = high
    PASSAGE_MODE = 0x04  #: args[0] 0 = off, 1 = on (bolt stays unlocked)


class ConfigOp(IntEnum):
    GET = 0x01
    SET = 0x02


class QueryType(IntEnum):
    """Types of :attr:`Cmd.QUERY`."""

    BATTERY = 0x01  #: response args: percent, millivolts uint16 BE, flags
    FIRMWARE = 0x02  #: response args: major, minor, patch, build
    LOG_COUNT = 0x03  #: response args: entries held uint16 BE, capacity uint16 BE
    LOG_ENTRY = 0x04  #: request args[0:2] index (0 = newest); response: event, detail, source, 0
    LOG_TIME = 0x05  #: request args[0:2] index; response args: entry time uint32 BE


class QueryOp(IntEnum):
    READ = 0x01


class EventType(IntEnum):
    """Types of lock-originated :attr:`Cmd.EVENT` frames; value[0] is the detail code."""

    MANUAL_OPERATION = 0x01  #: detail: BoltState after a knob/key turn
    DOOR = 0x02  #: detail: DoorState
    JAM = 0x03  #: detail: the OperationOp that jammed
    TAMPER = 0x04  #: detail: 1 = housing opened / forced
    LOW_BATTERY = 0x05  #: detail: battery percent
    WRONG_ATTEMPTS = 0x06  #: detail: consecutive refused frames (saturates at 255)
    FACTORY_RESET = 0x07  #: detail: 1 if a lock key was wiped, else 0
    AUTO_RELOCK = 0x08  #: detail: BoltState after the relock
    REMOTE_OPERATION = 0x09  #: detail: OperationOp executed from a frame


class LogCode(IntEnum):
    """What a lock's log entry records (QUERY/LOG_ENTRY response args[0]).

    0x01..0x09 mirror :class:`EventType`; 0x20 and up are log-only.
    """

    MANUAL_OPERATION = EventType.MANUAL_OPERATION  #: detail: BoltState
    DOOR = EventType.DOOR  #: detail: DoorState
    JAM = EventType.JAM  #: detail: OperationOp that jammed
    TAMPER = EventType.TAMPER  #: detail: 1
    LOW_BATTERY = EventType.LOW_BATTERY  #: detail: percent
    WRONG_ATTEMPTS = EventType.WRONG_ATTEMPTS  #: detail: consecutive refused frames
    FACTORY_RESET = EventType.FACTORY_RESET  #: detail: 1 if a lock key was wiped
    AUTO_RELOCK = EventType.AUTO_RELOCK  #: detail: BoltState
    REMOTE_OPERATION = EventType.REMOTE_OPERATION  #: detail: OperationOp
    BOUND = 0x20  #: detail: key version (registration committed)
    KEY_ROTATED = 0x21  #: detail: new key version
    TIME_SET = 0x22  #: detail: 0
    CONFIG_SET = 0x23  #: detail: ConfigType
    REFUSED = 0x24  #: detail: ReasonCode of a refused frame
    REFUSALS_SUPPRESSED = 0x25  #: detail: refusals not logged one by one (saturates)
    REGISTRATION_OPENED = 0x26  #: detail: window minutes (rounded up)
    REGISTRATION_CLOSED = 0x27  #: detail: 0 expired, 1 bound, 2 factory reset, 3 power
    LOCKOUT_ENDED = 0x28  #: detail: 0
    BATTERY_REPLACED = 0x29  #: detail: 0 (the clock was reset)
    JAM_CLEARED = 0x2A  #: detail: BoltState after clearing
    NEGOTIATION_EXPIRED = 0x2B  #: detail: the pending key version
    STARTED = 0x2C  #: detail: 0 state restored, 1 fresh start (see load_problem)
    BATTERY_LEVEL = 0x2D  #: detail: percent (a level change without an event)


class LogSource(IntEnum):
    """Who caused a log entry (QUERY/LOG_ENTRY response args[2])."""

    LOCK = 0x01  #: a person at the lock, a sensor, or the lock itself
    REMOTE = 0x02  #: a frame from the RAS (directly, or relayed by a BGW or RAC)
    TIMER = 0x03  #: a timer of the lock (auto-relock, window expiry)


class BoltState(IntEnum):
    UNKNOWN = 0x00
    LOCKED = 0x01
    UNLOCKED = 0x02
    JAMMED = 0x03


class DoorState(IntEnum):
    UNKNOWN = 0x00
    CLOSED = 0x01
    OPEN = 0x02


class StatusFlag(IntEnum):
    """Bits of the status byte args[3] in a STATUS-style response."""

    PASSAGE_MODE = 0x01
    BOUND = 0x02
    LOW_BATTERY = 0x04
    TAMPERED = 0x08
    REGISTRATION_OPEN = 0x10


class ReasonCode(IntEnum):
    """Why a frame was refused. Carried as the ``type`` of an :attr:`Cmd.ERROR` frame.

    The numbering is stable: a code is never reused for another meaning.
    """

    BAD_LENGTH = 0x01  #: not 16 (base) or 20 (secure) bytes
    BAD_TAG = 0x02  #: secure profile: the CMAC tag does not verify
    BAD_CHECK = 0x03  #: the XOR check byte does not match after decryption
    UNKNOWN_COMMAND = 0x04  #: cmd/type not in the table, or a response/event sent to the lock
    BAD_VALUE = 0x05  #: known command, value bytes out of range or reserved bytes non-zero
    STALE = 0x06  #: timestamp outside the lock's window
    REPLAY = 0x07  #: the same frame was accepted before
    COUNTER = 0x08  #: secure profile: counter at or below what was accepted (outside the window)
    NOT_BOUND = 0x09  #: an operation sent to an unbound lock
    WRONG_KEY = 0x0A  #: valid under a key the lock knows but refuses now (e.g. factory key)
    BUSY = 0x0B  #: the mechanism is moving or another operation is pending
    JAMMED = 0x0C  #: the bolt is jammed; a person must clear it
    LOCKED_OUT = 0x0D  #: too many refused frames; the lock ignores frames for a back-off time
    REGISTRATION_CLOSED = 0x0E  #: factory-key frame outside the registration window
    KEY_SEQUENCE = 0x0F  #: key frames out of order or versions that do not match
    PASSAGE_MODE = 0x10  #: lock refused because passage mode is on
    LOW_BATTERY = 0x11  #: too little energy to move the bolt safely
    INTERNAL = 0x7F  #: the lock failed internally (logged on the lock)


#: Every (cmd, type) a lock accepts as a command, and the op codes valid for it.
#: Key parts have no op byte (their value[0] is the key version): ``None``.
COMMAND_TABLE: Final[dict[tuple[Cmd, int], frozenset[int] | None]] = {
    (Cmd.KEY, KeyType.PART_1): None,
    (Cmd.KEY, KeyType.PART_2): None,
    (Cmd.KEY, KeyType.COMMIT): frozenset({0x01}),
    (Cmd.TIME, TimeType.CLOCK): frozenset(TimeOp),
    (Cmd.OPERATION, OperationType.BOLT): frozenset(OperationOp),
    **{(Cmd.CONFIG, t): frozenset(ConfigOp) for t in ConfigType},
    **{(Cmd.QUERY, t): frozenset(QueryOp) for t in QueryType},
}


_KEY: Final = int(Cmd.KEY)
_KEY_PARTS: Final = frozenset((int(KeyType.PART_1), int(KeyType.PART_2)))


def is_key_layout(cmd: int, type_: int) -> bool:
    """True for the frames whose value is ``[version, 8 key bytes]`` (or its ack)."""
    return (cmd & ~RESPONSE_BIT) == _KEY and type_ in _KEY_PARTS
