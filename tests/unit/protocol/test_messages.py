"""Frame builders and argument layouts (heslock.protocol.messages) and the code tables."""

from __future__ import annotations

import pytest

from heslock.protocol import (
    COMMAND_TABLE,
    BoltState,
    Cmd,
    ConfigOp,
    ConfigType,
    DoorState,
    EventType,
    Frame,
    FrameRejected,
    KeyAckBody,
    KeyPartBody,
    KeyType,
    Layout,
    OpBody,
    OperationOp,
    OperationType,
    QueryOp,
    QueryType,
    ReasonCode,
    StatusArgs,
    StatusFlag,
    TimeOp,
    TimeType,
)
from heslock.protocol import messages as m
from heslock.protocol.codes import is_key_layout

TS = 1_700_000_000
DEVICE = bytes.fromhex("F01122334455")


@pytest.mark.parametrize("layout", list(Layout))
def test_command(layout: Layout) -> None:
    frame = m.command(Cmd.OPERATION, OperationType.BOLT, OperationOp.UNLOCK, 7, TS, layout)
    assert frame.cmd == 0x03
    assert frame.type == 0x01
    assert frame.timestamp == TS
    assert not frame.is_response
    assert OpBody.unpack(frame.value, layout) == OpBody(OperationOp.UNLOCK, 7, bytes(4))


def test_command_args_padded_and_limited() -> None:
    frame = m.command(Cmd.CONFIG, ConfigType.SOUND, ConfigOp.SET, 1, TS, Layout.SECURE, b"\x02")
    assert frame.value[5:] == b"\x02\0\0\0"
    with pytest.raises(ValueError, match="at most 4"):
        m.command(Cmd.CONFIG, ConfigType.SOUND, ConfigOp.SET, 1, TS, Layout.SECURE, bytes(5))
    assert m.pad_args(b"") == bytes(4)
    assert m.pad_args(b"\x01\x02\x03\x04") == b"\x01\x02\x03\x04"


@pytest.mark.parametrize("layout", list(Layout))
def test_response_echoes_type_op_and_sequence(layout: Layout) -> None:
    request = m.command(Cmd.OPERATION, OperationType.BOLT, OperationOp.STATUS, 42, TS, layout)
    body = OpBody.unpack(request.value, layout)
    status = StatusArgs(BoltState.LOCKED, DoorState.CLOSED, 87, StatusFlag.BOUND)
    answer = m.response(request, body, TS + 1, layout, bytes(status))
    assert answer.cmd == 0x83
    assert answer.is_response
    assert answer.type == request.type
    assert answer.timestamp == TS + 1
    back = OpBody.unpack(answer.value, layout)
    assert (back.op, back.seq) == (OperationOp.STATUS, 42)
    assert StatusArgs.from_bytes(back.args) == status


@pytest.mark.parametrize("layout", list(Layout))
def test_error_response(layout: Layout) -> None:
    request = m.command(Cmd.QUERY, QueryType.BATTERY, QueryOp.READ, 9, TS, layout)
    err = m.error_response(ReasonCode.BUSY, TS, layout, request, QueryOp.READ, 9, 0x0102)
    assert err.cmd == 0x8F
    assert err.type == ReasonCode.BUSY
    body = OpBody.unpack(err.value, layout)
    assert (body.op, body.seq) == (QueryOp.READ, 9)
    assert body.args == bytes((0x05, 0x01, 0x01, 0x02))  # request cmd, type, detail BE


def test_error_response_without_readable_request() -> None:
    err = m.error_response(ReasonCode.BAD_CHECK, TS, Layout.BASE)
    assert err.cmd == Cmd.ERROR | 0x80
    assert err.type == ReasonCode.BAD_CHECK
    assert OpBody.unpack(err.value, Layout.BASE) == OpBody(0, 0, bytes(4))


@pytest.mark.parametrize("layout", list(Layout))
def test_event(layout: Layout) -> None:
    frame = m.event(EventType.DOOR, DoorState.OPEN, 5, TS, layout, b"\x01")
    assert frame.cmd == 0x86
    assert frame.type == EventType.DOOR
    assert OpBody.unpack(frame.value, layout) == OpBody(DoorState.OPEN, 5, b"\x01\0\0\0")


def test_key_part_and_ack() -> None:
    part = m.key_part(KeyType.PART_2, 3, bytes(range(8)), TS)
    assert (part.cmd, part.type) == (0x01, 0x02)
    assert KeyPartBody.unpack(part.value) == KeyPartBody(3, bytes(range(8)))
    ack = m.key_ack(KeyType.PART_2, 3, DEVICE, TS)
    assert (ack.cmd, ack.type) == (0x81, 0x02)
    assert KeyAckBody.unpack(ack.value) == KeyAckBody(3, DEVICE, 2)
    with pytest.raises(ValueError, match="PART_1 or PART_2"):
        m.key_part(KeyType.COMMIT, 3, bytes(8), TS)


@pytest.mark.parametrize("layout", list(Layout))
def test_key_commit(layout: Layout) -> None:
    frame = m.key_commit(4, 1, TS, layout)
    assert (frame.cmd, frame.type) == (0x01, 0x03)
    assert OpBody.unpack(frame.value, layout) == OpBody(m.COMMIT_OP, 1, b"\x04\0\0\0")


def test_status_args() -> None:
    status = StatusArgs(BoltState.UNLOCKED, DoorState.OPEN, 100, StatusFlag.PASSAGE_MODE)
    assert bytes(status) == b"\x02\x02\x64\x01"
    assert status.has(StatusFlag.PASSAGE_MODE)
    assert not status.has(StatusFlag.TAMPERED)
    assert StatusArgs.from_bytes(bytes(status)) == status
    for battery in (-1, 101):
        with pytest.raises(ValueError, match=r"0\.\.100"):
            StatusArgs(BoltState.LOCKED, DoorState.CLOSED, battery)


@pytest.mark.parametrize(
    "args",
    [b"\x07\x01\x50\x00", b"\x01\x09\x50\x00", b"\x01\x01\xff\x00", b"\x01\x01\x50"],
    ids=["bolt", "door", "battery-over-100", "short"],
)
def test_status_args_unknown_state_from_a_lock_is_a_protocol_error(args: bytes) -> None:
    with pytest.raises(FrameRejected) as info:
        StatusArgs.from_bytes(args)
    assert info.value.reason is ReasonCode.BAD_VALUE


def test_integer_helpers() -> None:
    assert m.u16(0x1234) == b"\x12\x34"
    assert m.u32(0x12345678) == b"\x12\x34\x56\x78"
    assert m.read_u16(b"\x12\x34\xff\xff") == 0x1234
    assert m.read_u32(b"\x12\x34\x56\x78") == 0x12345678


def test_command_table_covers_every_group_type_and_op() -> None:
    assert COMMAND_TABLE[(Cmd.OPERATION, OperationType.BOLT)] == frozenset(OperationOp)
    assert COMMAND_TABLE[(Cmd.TIME, TimeType.CLOCK)] == frozenset(TimeOp)
    for config in ConfigType:
        assert COMMAND_TABLE[(Cmd.CONFIG, config)] == frozenset(ConfigOp)
    for query in QueryType:
        assert COMMAND_TABLE[(Cmd.QUERY, query)] == frozenset(QueryOp)
    assert COMMAND_TABLE[(Cmd.KEY, KeyType.PART_1)] is None
    assert COMMAND_TABLE[(Cmd.KEY, KeyType.PART_2)] is None
    assert COMMAND_TABLE[(Cmd.KEY, KeyType.COMMIT)] == frozenset({m.COMMIT_OP})
    # Events and errors are lock-originated: never commands.
    assert not any(group in (Cmd.EVENT, Cmd.ERROR) for group, _ in COMMAND_TABLE)


def test_key_layout_predicate() -> None:
    assert is_key_layout(0x01, 0x01)
    assert is_key_layout(0x81, 0x02)
    assert not is_key_layout(0x01, 0x03)
    assert not is_key_layout(0x03, 0x01)


def test_reason_codes_are_stable() -> None:
    """The numbering is part of the wire format: a change here breaks deployed locks."""
    assert {r.name: r.value for r in ReasonCode} == {
        "BAD_LENGTH": 0x01,
        "BAD_TAG": 0x02,
        "BAD_CHECK": 0x03,
        "UNKNOWN_COMMAND": 0x04,
        "BAD_VALUE": 0x05,
        "STALE": 0x06,
        "REPLAY": 0x07,
        "COUNTER": 0x08,
        "NOT_BOUND": 0x09,
        "WRONG_KEY": 0x0A,
        "BUSY": 0x0B,
        "JAMMED": 0x0C,
        "LOCKED_OUT": 0x0D,
        "REGISTRATION_CLOSED": 0x0E,
        "KEY_SEQUENCE": 0x0F,
        "PASSAGE_MODE": 0x10,
        "LOW_BATTERY": 0x11,
        "INTERNAL": 0x7F,
    }


def test_frame_built_by_builders_is_a_frame() -> None:
    assert isinstance(m.key_commit(1, 1, TS, Layout.BASE), Frame)
