"""The 16-byte command frame of ISO/IEC 14543-5-104 (docs/protocol.md, "Frame").

::

    offset  size  field      meaning
    0       1     cmd        command group; lock-to-RAS frames set bit 7 (RESPONSE_BIT)
    1       1     type       sub-command within the group
    2       9     value      payload; layout below
    11      1     check      XOR of bytes 0..10
    12      4     timestamp  Unix time, uint32 big-endian

The frame is the *plaintext* of one AES block; :mod:`heslock.protocol.profile` encrypts it.
The value has two layouts:

- **op layout** (every frame but key parts): ``value[0]`` op code, then the sequence
  field, then four argument bytes at ``value[5:9]``. In the *base* profile the sequence is
  ``value[1:3]`` (uint16 BE, the standard's request sequence) and ``value[3:5]`` are
  reserved zero; in the *secure* profile ``value[1:5]`` is the 32-bit per-key counter.
  Arguments sit at the same offset in both, so command bodies are profile-independent.
- **key layout** (KEY/PART_1, KEY/PART_2 and their acks): ``value[0]`` key version,
  ``value[1:9]`` eight key bytes (commands) or device id + part number (acks).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum
from functools import reduce
from operator import xor
from typing import Any, Final

from heslock.protocol.codes import RESPONSE_BIT, ReasonCode
from heslock.protocol.errors import FrameRejected

FRAME_SIZE: Final = 16
VALUE_SIZE: Final = 9
ARGS_SIZE: Final = 4
#: Largest timestamp a uint32 holds (the year 2106): the field cannot carry more.
MAX_TIMESTAMP: Final = 0xFFFF_FFFF
MAX_SEQ_BASE: Final = 0xFFFF
MAX_COUNTER: Final = 0xFFFF_FFFF

_TS = struct.Struct(">I")
#: The whole plaintext in one struct call: cmd, type, value, check, timestamp.
_FRAME = struct.Struct(">BB9sBI")
_BASE_VALUE = struct.Struct(">BHH4s")  # op, seq, reserved (0), args
_SECURE_VALUE = struct.Struct(">BI4s")  # op, counter, args
_new = object.__new__


class Layout(Enum):
    """Where the sequence field sits in an op-layout value (see module docstring)."""

    BASE = "base"  #: uint16 at value[1:3], value[3:5] reserved zero
    SECURE = "secure"  #: uint32 counter at value[1:5]


def check_byte(first11: bytes) -> int:
    """The check field: XOR of frame bytes 0..10."""
    return reduce(xor, first11, 0)


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded 16-byte plaintext frame. ``cmd`` includes the response bit."""

    cmd: int
    type: int
    value: bytes
    timestamp: int

    def __post_init__(self) -> None:
        if not (0 <= self.cmd <= 0xFF and 0 <= self.type <= 0xFF):
            raise ValueError("cmd and type are single bytes")
        if len(self.value) != VALUE_SIZE or not isinstance(self.value, bytes):
            raise ValueError(f"value is {VALUE_SIZE} bytes")
        if not 0 <= self.timestamp <= MAX_TIMESTAMP:
            raise ValueError(f"timestamp {self.timestamp} does not fit uint32")

    @property
    def is_response(self) -> bool:
        return bool(self.cmd & RESPONSE_BIT)

    @property
    def group(self) -> int:
        """The command group: ``cmd`` without the response bit."""
        return self.cmd & ~RESPONSE_BIT

    @property
    def check(self) -> int:
        return check_byte(bytes((self.cmd, self.type)) + self.value)

    def __bytes__(self) -> bytes:
        check = self.cmd ^ self.type ^ reduce(xor, self.value, 0)
        return _FRAME.pack(self.cmd, self.type, self.value, check, self.timestamp)

    @classmethod
    def from_bytes(cls, data: bytes) -> Frame:
        """Decode a plaintext frame; a wrong check byte raises ``FrameRejected(BAD_CHECK)``."""
        if len(data) != FRAME_SIZE:
            raise FrameRejected(ReasonCode.BAD_LENGTH, f"a frame is 16 bytes, got {len(data)}")
        cmd, type_, value, check, timestamp = _FRAME.unpack(data)
        if cmd ^ type_ ^ reduce(xor, value, 0) != check:
            raise FrameRejected(ReasonCode.BAD_CHECK)
        return cls.trusted(cmd, type_, value, timestamp)

    @classmethod
    def trusted(cls, cmd: int, type_: int, value: bytes, timestamp: int) -> Frame:
        """Build without re-validating fields that are in range by construction (cut from
        16 bytes, or packed by a ``struct`` that checked them). The frame path's hot spot:
        the slot descriptors are written directly, which a frozen ``__init__`` cannot do."""
        frame = _new(cls)
        _FRAME_SLOTS[0](frame, cmd)
        _FRAME_SLOTS[1](frame, type_)
        _FRAME_SLOTS[2](frame, value)
        _FRAME_SLOTS[3](frame, timestamp)
        return frame


@dataclass(frozen=True, slots=True)
class OpBody:
    """An op-layout value: op code, sequence (or counter) and four argument bytes."""

    op: int
    seq: int
    args: bytes = bytes(ARGS_SIZE)

    def __post_init__(self) -> None:
        if not 0 <= self.op <= 0xFF:
            raise ValueError("op is a single byte")
        if not 0 <= self.seq <= MAX_COUNTER:
            raise ValueError(f"sequence {self.seq} does not fit uint32")
        if len(self.args) != ARGS_SIZE:
            raise ValueError(f"args are {ARGS_SIZE} bytes, got {len(self.args)}")

    def pack(self, layout: Layout) -> bytes:
        return pack_op_value(self.op, self.seq, self.args, layout)

    @classmethod
    def unpack(cls, value: bytes, layout: Layout) -> OpBody:
        """Split an op-layout value; non-zero reserved bytes raise ``BAD_VALUE``."""
        if len(value) != VALUE_SIZE:
            raise ValueError(f"value is {VALUE_SIZE} bytes, got {len(value)}")
        if layout is Layout.BASE:
            op, seq, reserved, args = _BASE_VALUE.unpack(value)
            if reserved:
                raise FrameRejected(ReasonCode.BAD_VALUE, "reserved bytes value[3:5] not zero")
        else:
            op, seq, args = _SECURE_VALUE.unpack(value)
        # Fields cut from 9 bytes are in range by construction: skip __post_init__.
        body = _new(cls)
        _OP_SLOTS[0](body, op)
        _OP_SLOTS[1](body, seq)
        _OP_SLOTS[2](body, args)
        return body


def _slot_setters(cls: type, names: tuple[str, ...]) -> tuple[Any, ...]:
    """The ``__set__`` of each slot descriptor of a frozen, slotted dataclass."""
    return tuple(cls.__dict__[name].__set__ for name in names)


_FRAME_SLOTS: Final = _slot_setters(Frame, ("cmd", "type", "value", "timestamp"))
_OP_SLOTS: Final = _slot_setters(OpBody, ("op", "seq", "args"))


def pack_op_value(op: int, seq: int, args: bytes, layout: Layout) -> bytes:
    """The 9-byte op-layout value. Out-of-range fields raise ``ValueError``."""
    if len(args) != ARGS_SIZE:
        raise ValueError(f"args are {ARGS_SIZE} bytes, got {len(args)}")
    try:
        if layout is Layout.BASE:
            return _BASE_VALUE.pack(op, seq, 0, args)
        return _SECURE_VALUE.pack(op, seq, args)
    except struct.error:
        limit = MAX_SEQ_BASE if layout is Layout.BASE else MAX_COUNTER
        raise ValueError(f"op must be 0..255 and sequence 0..{limit}") from None


@dataclass(frozen=True, slots=True)
class KeyPartBody:
    """A key-layout value of a KEY/PART_n command: key version and eight key bytes."""

    version: int
    key_bytes: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.version <= 0xFF:
            raise ValueError("key version is 1..255")
        if len(self.key_bytes) != 8:
            raise ValueError("a key part is 8 bytes")

    def pack(self) -> bytes:
        return bytes((self.version,)) + self.key_bytes

    @classmethod
    def unpack(cls, value: bytes) -> KeyPartBody:
        if value[0] == 0:
            raise FrameRejected(ReasonCode.BAD_VALUE, "key version 0 is reserved")
        return cls(value[0], bytes(value[1:9]))


@dataclass(frozen=True, slots=True)
class KeyAckBody:
    """A key-layout value of the lock's answer to a key part: version, device id, part."""

    version: int
    device_id: bytes
    part: int

    def __post_init__(self) -> None:
        if len(self.device_id) != 6:
            raise ValueError("device id is 6 bytes")

    def pack(self) -> bytes:
        return bytes((self.version,)) + self.device_id + bytes((self.part, 0))

    @classmethod
    def unpack(cls, value: bytes) -> KeyAckBody:
        if value[8] != 0:
            raise FrameRejected(ReasonCode.BAD_VALUE, "reserved byte value[8] not zero")
        return cls(value[0], bytes(value[1:7]), value[7])
