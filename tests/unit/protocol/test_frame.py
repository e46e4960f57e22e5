"""The 16-byte frame and its value layouts (heslock.protocol.frame)."""

from __future__ import annotations

from functools import reduce
from operator import xor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heslock.protocol import (
    FRAME_SIZE,
    RESPONSE_BIT,
    Frame,
    FrameRejected,
    KeyAckBody,
    KeyPartBody,
    Layout,
    OpBody,
    ReasonCode,
)
from heslock.protocol.frame import MAX_TIMESTAMP, check_byte, pack_op_value

u8 = st.integers(0, 0xFF)
frames = st.builds(
    Frame,
    cmd=u8,
    type=u8,
    value=st.binary(min_size=9, max_size=9),
    timestamp=st.integers(0, MAX_TIMESTAMP),
)


def test_layout_of_the_standard_example() -> None:
    """ARCHITECTURE.md: cmd, type, value(9), check = XOR of bytes 0..10, uint32 BE time."""
    frame = Frame(0x03, 0x01, bytes.fromhex("010203040506070809"), 0x6543_2100)
    raw = bytes(frame)
    assert len(raw) == FRAME_SIZE == 16
    assert raw[0] == 0x03
    assert raw[1] == 0x01
    assert raw[2:11] == bytes.fromhex("010203040506070809")
    assert raw[11] == 0x03 ^ 0x01 ^ 1 ^ 2 ^ 3 ^ 4 ^ 5 ^ 6 ^ 7 ^ 8 ^ 9 == frame.check
    assert raw[12:16] == bytes.fromhex("65432100")


@settings(max_examples=500, deadline=None)
@given(frames)
def test_frame_round_trip(frame: Frame) -> None:
    raw = bytes(frame)
    assert len(raw) == 16
    assert raw[11] == reduce(xor, raw[:11], 0)
    back = Frame.from_bytes(raw)
    assert back == frame
    assert bytes(back) == raw
    assert back.is_response == bool(frame.cmd & 0x80)
    assert back.group == frame.cmd & 0x7F


@settings(max_examples=300, deadline=None)
@given(frames, st.integers(0, 10), st.integers(1, 255))
def test_any_check_byte_change_is_bad_check(frame: Frame, index: int, delta: int) -> None:
    """Changing one byte of 0..10, or the check byte itself, breaks the check."""
    raw = bytearray(bytes(frame))
    raw[index] ^= delta
    with pytest.raises(FrameRejected) as info:
        Frame.from_bytes(bytes(raw))
    assert info.value.reason is ReasonCode.BAD_CHECK
    raw = bytearray(bytes(frame))
    raw[11] ^= delta
    with pytest.raises(FrameRejected) as info:
        Frame.from_bytes(bytes(raw))
    assert info.value.reason is ReasonCode.BAD_CHECK


@pytest.mark.parametrize("size", [0, 15, 17, 20])
def test_from_bytes_length(size: int) -> None:
    with pytest.raises(FrameRejected) as info:
        Frame.from_bytes(bytes(size))
    assert info.value.reason is ReasonCode.BAD_LENGTH


def test_from_bytes_accepts_bytearray_and_copies() -> None:
    raw = bytearray(bytes(Frame(1, 2, bytes(range(9)), 3)))
    frame = Frame.from_bytes(raw)  # type: ignore[arg-type]  # any buffer works at run time
    raw[2] ^= 0xFF
    assert frame.value == bytes(range(9))
    assert isinstance(frame.value, bytes)


def test_check_byte() -> None:
    assert check_byte(b"") == 0
    assert check_byte(bytes(range(11))) == reduce(xor, range(11), 0)
    assert check_byte(b"\xff" * 11) == 0xFF


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cmd": -1}, "single bytes"),
        ({"cmd": 256}, "single bytes"),
        ({"type": -1}, "single bytes"),
        ({"type": 256}, "single bytes"),
        ({"value": bytes(8)}, "value is 9 bytes"),
        ({"value": bytes(10)}, "value is 9 bytes"),
        ({"timestamp": -1}, "uint32"),
        ({"timestamp": 1 << 32}, "uint32"),
    ],
)
def test_frame_ranges(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"cmd": 1, "type": 1, "value": bytes(9), "timestamp": 0}
    fields.update(kwargs)
    # The message names the field today; the contract is ValueError (a local misuse).
    assert message
    with pytest.raises(ValueError):  # noqa: PT011 - wording is the codec's; the type is the contract
        Frame(**fields)  # type: ignore[arg-type]  # fields built as a dict on purpose


def test_frame_range_edges_accepted() -> None:
    frame = Frame(0xFF, 0xFF, b"\xff" * 9, MAX_TIMESTAMP)
    assert Frame.from_bytes(bytes(frame)) == frame
    assert frame.is_response
    assert frame.group == 0x7F
    assert not Frame(0x7F, 0, bytes(9), 0).is_response


def test_response_bit() -> None:
    assert RESPONSE_BIT == 0x80
    command = Frame(0x03, 0x01, bytes(9), 1)
    answer = Frame(0x83, 0x01, bytes(9), 1)
    assert not command.is_response
    assert answer.is_response
    assert command.group == answer.group == 0x03


# ------------------------------------------------------------------------- OpBody


def test_op_body_layouts_byte_by_byte() -> None:
    body = OpBody(0xAB, 0x1234, b"\x01\x02\x03\x04")
    assert body.pack(Layout.BASE) == bytes.fromhex("ab1234000001020304")
    assert body.pack(Layout.SECURE) == bytes.fromhex("ab0000123401020304")
    counter = OpBody(0x01, 0xDEADBEEF, bytes(4))
    assert counter.pack(Layout.SECURE) == bytes.fromhex("01deadbeef00000000")


def test_op_body_default_args() -> None:
    assert OpBody(1, 2).args == bytes(4)


@settings(max_examples=500, deadline=None)
@given(op=u8, seq=st.integers(0, 0xFFFF), args=st.binary(min_size=4, max_size=4))
def test_op_body_round_trip_base(op: int, seq: int, args: bytes) -> None:
    body = OpBody(op, seq, args)
    packed = body.pack(Layout.BASE)
    assert len(packed) == 9
    assert packed[3:5] == b"\0\0"
    assert OpBody.unpack(packed, Layout.BASE) == body


@settings(max_examples=500, deadline=None)
@given(op=u8, seq=st.integers(0, 0xFFFF_FFFF), args=st.binary(min_size=4, max_size=4))
def test_op_body_round_trip_secure(op: int, seq: int, args: bytes) -> None:
    body = OpBody(op, seq, args)
    packed = body.pack(Layout.SECURE)
    assert len(packed) == 9
    assert OpBody.unpack(packed, Layout.SECURE) == body
    # Arguments sit at value[5:9] in both layouts.
    if seq <= 0xFFFF:
        assert body.pack(Layout.BASE)[5:] == packed[5:] == args


@settings(max_examples=200, deadline=None)
@given(value=st.binary(min_size=9, max_size=9))
def test_op_body_unpack_any_value(value: bytes) -> None:
    """Any 9 bytes unpack in the secure layout; in the base layout unless reserved != 0."""
    assert OpBody.unpack(value, Layout.SECURE).pack(Layout.SECURE) == value
    if value[3:5] == b"\0\0":
        assert OpBody.unpack(value, Layout.BASE).pack(Layout.BASE) == value
    else:
        with pytest.raises(FrameRejected) as info:
            OpBody.unpack(value, Layout.BASE)
        assert info.value.reason is ReasonCode.BAD_VALUE


@pytest.mark.parametrize("reserved", ["0100", "0001", "ffff"])
def test_op_body_base_reserved_bytes(reserved: str) -> None:
    value = bytes.fromhex("010005" + reserved + "00000000")
    with pytest.raises(FrameRejected, match="reserved") as info:
        OpBody.unpack(value, Layout.BASE)
    assert info.value.reason is ReasonCode.BAD_VALUE


@pytest.mark.parametrize("size", [8, 10])
def test_op_body_unpack_wrong_size(size: int) -> None:
    with pytest.raises(ValueError, match="9 bytes"):
        OpBody.unpack(bytes(size), Layout.SECURE)


@pytest.mark.parametrize(
    ("op", "seq", "args", "message"),
    [
        (-1, 0, bytes(4), "single byte"),
        (256, 0, bytes(4), "single byte"),
        (0, -1, bytes(4), "uint32"),
        (0, 1 << 32, bytes(4), "uint32"),
        (0, 0, bytes(3), "args are 4 bytes"),
        (0, 0, bytes(5), "args are 4 bytes"),
    ],
)
def test_op_body_ranges(op: int, seq: int, args: bytes, message: str) -> None:
    assert message  # what the field is about; the contract is ValueError
    with pytest.raises(ValueError):  # noqa: PT011 - wording is the codec's; the type is the contract
        OpBody(op, seq, args)


@pytest.mark.parametrize("layout", list(Layout))
@pytest.mark.parametrize("size", [3, 5])
def test_pack_op_value_args_size(layout: Layout, size: int) -> None:
    with pytest.raises(ValueError, match="args are 4 bytes"):
        pack_op_value(1, 1, bytes(size), layout)


def test_op_body_base_sequence_is_16_bits() -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - wording is the codec's; the type is the contract
        OpBody(1, 0x1_0000).pack(Layout.BASE)
    assert OpBody(1, 0xFFFF).pack(Layout.BASE)[1:3] == b"\xff\xff"


# ------------------------------------------------------------------ key layouts


def test_key_part_body_layout() -> None:
    body = KeyPartBody(7, bytes(range(1, 9)))
    assert body.pack() == bytes.fromhex("070102030405060708")
    assert KeyPartBody.unpack(body.pack()) == body


@settings(max_examples=300, deadline=None)
@given(version=st.integers(1, 255), key_bytes=st.binary(min_size=8, max_size=8))
def test_key_part_round_trip(version: int, key_bytes: bytes) -> None:
    body = KeyPartBody(version, key_bytes)
    assert KeyPartBody.unpack(body.pack()) == body


def test_key_part_version_zero_reserved() -> None:
    with pytest.raises(FrameRejected, match="version 0") as info:
        KeyPartBody.unpack(bytes(9))
    assert info.value.reason is ReasonCode.BAD_VALUE
    for version in (0, 256):
        with pytest.raises(ValueError, match=r"1\.\.255"):
            KeyPartBody(version, bytes(8))
    for size in (7, 9):
        with pytest.raises(ValueError, match="8 bytes"):
            KeyPartBody(1, bytes(size))


def test_key_ack_body_layout() -> None:
    body = KeyAckBody(3, bytes.fromhex("F01122334455"), 2)
    assert body.pack() == bytes.fromhex("03f0112233445502" + "00")
    assert KeyAckBody.unpack(body.pack()) == body


@settings(max_examples=300, deadline=None)
@given(version=u8, device=st.binary(min_size=6, max_size=6), part=u8)
def test_key_ack_round_trip(version: int, device: bytes, part: int) -> None:
    body = KeyAckBody(version, device, part)
    assert KeyAckBody.unpack(body.pack()) == body


def test_key_ack_reserved_byte_and_sizes() -> None:
    with pytest.raises(FrameRejected, match="reserved") as info:
        KeyAckBody.unpack(bytes.fromhex("01f011223344550101"))
    assert info.value.reason is ReasonCode.BAD_VALUE
    for size in (5, 7):
        with pytest.raises(ValueError, match="6 bytes"):
            KeyAckBody(1, bytes(size), 1)
