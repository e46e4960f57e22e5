"""Builders for every frame of the command table, and the argument layouts.

This is the one place (with :mod:`heslock.protocol.frame`) that knows where bytes go;
parties call these functions and never index into a value themselves.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from heslock.protocol.codes import (
    RESPONSE_BIT,
    BoltState,
    Cmd,
    DoorState,
    EventType,
    KeyType,
    ReasonCode,
    StatusFlag,
)
from heslock.protocol.errors import FrameRejected
from heslock.protocol.frame import (
    ARGS_SIZE,
    MAX_TIMESTAMP,
    Frame,
    KeyAckBody,
    KeyPartBody,
    Layout,
    OpBody,
    pack_op_value,
)

COMMIT_OP: Final = 0x01


def pad_args(args: bytes) -> bytes:
    if len(args) > ARGS_SIZE:
        raise ValueError(f"at most {ARGS_SIZE} argument bytes")
    return args + bytes(ARGS_SIZE - len(args))


def command(
    group: Cmd, type_: int, op: int, seq: int, ts: int, layout: Layout, args: bytes = b""
) -> Frame:
    """A RAS-to-lock command in the op layout."""
    if len(args) != ARGS_SIZE:
        args = pad_args(args)
    if not (0 <= type_ <= 0xFF and 0 <= ts <= MAX_TIMESTAMP):
        raise ValueError("type is a single byte and the timestamp a uint32")
    # group is a Cmd; pack_op_value range-checked op, seq and args: no second validation.
    return Frame.trusted(int(group), type_, pack_op_value(op, seq, args, layout), ts)


def response(request: Frame, body: OpBody, ts: int, layout: Layout, args: bytes = b"") -> Frame:
    """The lock's answer to an op-layout command: same type and op, sequence echoed."""
    value = OpBody(body.op, body.seq, pad_args(args)).pack(layout)
    return Frame(request.cmd | RESPONSE_BIT, request.type, value, ts)


def error_response(
    reason: ReasonCode,
    ts: int,
    layout: Layout,
    request: Frame | None = None,
    op: int = 0,
    seq: int = 0,
    detail: int = 0,
) -> Frame:
    """An ERROR frame: type = reason; op and sequence echoed when the request was readable;
    args = request cmd, request type, detail (uint16 BE)."""
    args = bytes((request.cmd, request.type)) if request is not None else b"\0\0"
    args += detail.to_bytes(2, "big")
    return Frame(Cmd.ERROR | RESPONSE_BIT, reason, OpBody(op, seq, args).pack(layout), ts)


def event(
    kind: EventType, detail: int, counter: int, ts: int, layout: Layout, args: bytes = b""
) -> Frame:
    """A lock-originated event; ``counter`` is the lock's own per-key event counter."""
    value = OpBody(detail, counter, pad_args(args)).pack(layout)
    return Frame(Cmd.EVENT | RESPONSE_BIT, kind, value, ts)


def key_part(part: KeyType, version: int, key_bytes: bytes, ts: int) -> Frame:
    if part not in (KeyType.PART_1, KeyType.PART_2):
        raise ValueError("a key part is PART_1 or PART_2")
    return Frame(Cmd.KEY, part, KeyPartBody(version, key_bytes).pack(), ts)


def key_ack(part: KeyType, version: int, device_id: bytes, ts: int) -> Frame:
    return Frame(Cmd.KEY | RESPONSE_BIT, part, KeyAckBody(version, device_id, part).pack(), ts)


def key_commit(version: int, counter: int, ts: int, layout: Layout) -> Frame:
    return command(Cmd.KEY, KeyType.COMMIT, COMMIT_OP, counter, ts, layout, bytes((version,)))


_BOLT_STATES: Final = frozenset(int(s) for s in BoltState)
_DOOR_STATES: Final = frozenset(int(s) for s in DoorState)


@dataclass(frozen=True, slots=True)
class StatusArgs:
    """Args of every response that reports the lock's state (operations, events)."""

    bolt: BoltState
    door: DoorState
    battery: int  #: percent, 0..100
    flags: int = 0  #: StatusFlag bits

    def __post_init__(self) -> None:
        if not 0 <= self.battery <= 100:
            raise ValueError("battery percent is 0..100")

    def __bytes__(self) -> bytes:
        return bytes((self.bolt, self.door, self.battery, self.flags))

    @classmethod
    def from_bytes(cls, args: bytes) -> StatusArgs:
        """Decode the args of a lock's answer; anything out of the tables is a peer error."""
        if len(args) != ARGS_SIZE:
            raise FrameRejected(ReasonCode.BAD_VALUE, f"status args are {ARGS_SIZE} bytes")
        if args[0] not in _BOLT_STATES or args[1] not in _DOOR_STATES or args[2] > 100:
            raise FrameRejected(ReasonCode.BAD_VALUE, f"status args {args.hex()} out of range")
        return cls(BoltState(args[0]), DoorState(args[1]), args[2], args[3])

    def has(self, flag: StatusFlag) -> bool:
        return bool(self.flags & flag)


def u16(value: int) -> bytes:
    return struct.pack(">H", value)


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


def read_u16(args: bytes) -> int:
    return int(struct.unpack_from(">H", args)[0])


def read_u32(args: bytes) -> int:
    return int(struct.unpack_from(">I", args)[0])
