"""DeviceId: the 12-hex-character MAC id of the DDMS (heslock.protocol.ids)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heslock.errors import LocalError, UsageError
from heslock.protocol import DeviceId, InvalidDeviceId

CANONICAL = "F01122334455"


@pytest.mark.parametrize(
    "text",
    [
        "F0:11:22:33:44:55",
        "f0:11:22:33:44:55",
        "F0-11-22-33-44-55",
        "f0-11-22-33-44-55",
        "F01122334455",
        "f01122334455",
        "f0:11:22:33:44:55".replace("f0", "F0"),
        "  F0:11:22:33:44:55\n",  # surrounding white space (pasted ids) is stripped
    ],
)
def test_accepted_spellings(text: str) -> None:
    dev = DeviceId.parse(text)
    assert dev.hex == CANONICAL
    assert str(dev) == CANONICAL
    assert dev.colon == "F0:11:22:33:44:55"
    assert bytes(dev) == bytes.fromhex(CANONICAL)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("F0112233445", "expected 12 hex digits"),  # 11 digits
        ("F011223344556", "expected 12 hex digits"),  # 13 digits
        ("", "expected 12 hex digits"),
        ("F0:11:22:33:44", "expected 12 hex digits"),  # five octets
        ("F0:11:22:33:44:55:66", "expected 12 hex digits"),  # seven octets
        ("F0:1:22:33:44:55", "expected 12 hex digits"),  # one-digit octet
        ("G01122334455", "expected 12 hex digits"),  # non-hex
        ("F0:11:22:33:44:5Z", "expected 12 hex digits"),
        ("F0 11 22 33 44 55", "expected 12 hex digits"),  # spaces are no separator
        ("F0.11.22.33.44.55", "expected 12 hex digits"),  # dots are no separator
        ("F011.2233.4455", "expected 12 hex digits"),  # Cisco dotted form
        ("F0:11-22:33:44:55", "expected 12 hex digits"),  # mixed separators
        ("F0-11-22-33-44:55", "expected 12 hex digits"),
        ("F0::11:22:33:44:55", "expected 12 hex digits"),
        ("0xF01122334455", "expected 12 hex digits"),
        ("\uff26\uff10\uff11\uff11\uff12\uff12\uff13\uff13\uff14\uff14\uff15\uff15", "expected"),
        ("000000000000", "all-zero"),
        ("00:00:00:00:00:00", "all-zero"),
        ("FFFFFFFFFFFF", "broadcast"),
        ("ff:ff:ff:ff:ff:ff", "broadcast"),
        ("01:00:5E:00:00:01", "multicast"),  # IPv4 multicast MAC
        ("33:33:00:00:00:01", "multicast"),  # IPv6 multicast MAC
        ("F1:11:22:33:44:55", "multicast"),  # group bit set in the first octet
    ],
)
def test_refused_spellings(text: str, why: str) -> None:
    with pytest.raises(InvalidDeviceId, match=why):
        DeviceId.parse(text)


@pytest.mark.parametrize("value", [None, 0xF01122334455, b"F01122334455", ["F0"]])
def test_non_str_refused(value: object) -> None:
    with pytest.raises(InvalidDeviceId, match="is text, not"):
        DeviceId.parse(value)  # type: ignore[arg-type]  # deliberately the wrong type


def test_error_is_a_usage_error_and_value_error() -> None:
    with pytest.raises(InvalidDeviceId) as info:
        DeviceId.parse("nope")
    assert isinstance(info.value, UsageError)
    assert isinstance(info.value, LocalError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("f01122334455", "not a canonical"),  # lower case
        ("F0:11:22:33:44:55", "not a canonical"),
        ("F011223344", "not a canonical"),
        ("F0112233445G", "not a canonical"),
        ("000000000000", "all-zero"),
        ("FFFFFFFFFFFF", "broadcast"),
        ("030000000000", "multicast"),
    ],
)
def test_constructor_demands_the_canonical_form(text: str, why: str) -> None:
    with pytest.raises(InvalidDeviceId, match=why):
        DeviceId(text)


def test_from_bytes() -> None:
    assert DeviceId.from_bytes(bytes.fromhex(CANONICAL)) == DeviceId(CANONICAL)
    for size in (0, 5, 7):
        with pytest.raises(InvalidDeviceId, match="6 bytes"):
            DeviceId.from_bytes(bytes(size))
    with pytest.raises(InvalidDeviceId, match="multicast"):
        DeviceId.from_bytes(b"\x01\x02\x03\x04\x05\x06")


def test_ordering_and_hashing() -> None:
    a, b = DeviceId.parse("02:00:00:00:00:01"), DeviceId.parse("02:00:00:00:00:02")
    assert a < b
    assert len({a, DeviceId.parse("020000000001")}) == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=6, max_size=6))
def test_bytes_round_trip(octets: bytes) -> None:
    """Every 6 bytes is a device id or refused for exactly the documented reasons."""
    try:
        dev = DeviceId.from_bytes(octets)
    except InvalidDeviceId:
        assert octets[0] & 1 or octets in (bytes(6), b"\xff" * 6)
        return
    assert bytes(dev) == octets
    assert DeviceId.parse(dev.colon) == dev
    assert DeviceId.parse(dev.colon.replace(":", "-").lower()) == dev
