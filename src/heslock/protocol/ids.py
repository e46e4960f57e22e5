"""Device identifiers: the 12-hex-character MAC id the DDMS knows every device by.

ISO/IEC 14543-5-104 identifies a BSLD by a globally unique 12-character MAC address. We
accept the common spellings (``F0:11:22:33:44:55``, ``f0-11-22-33-44-55``,
``F01122334455``) and keep one canonical form: 12 upper-case hex characters. Ids that no
real device can have are refused: the all-zero and broadcast addresses, and group
(multicast) addresses, whose least significant bit of the first octet is set (IEEE 802).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from heslock.protocol.errors import InvalidDeviceId

#: The accepted spellings: plain, or six octets separated consistently by ':' or '-'.
_PATTERN: Final = re.compile(
    r"(?:[0-9A-Fa-f]{12}|[0-9A-Fa-f]{2}(?P<sep>[:-])(?:[0-9A-Fa-f]{2}(?P=sep)){4}[0-9A-Fa-f]{2})"
)
_MULTICAST_BIT: Final = 0x01


@dataclass(frozen=True, slots=True, order=True)
class DeviceId:
    """A device's canonical id: 12 upper-case hex characters (6 octets)."""

    hex: str

    def __post_init__(self) -> None:
        if len(self.hex) != 12 or self.hex != self.hex.upper() or not _is_hex(self.hex):
            raise InvalidDeviceId(f"not a canonical device id: {self.hex!r}")
        octets = bytes.fromhex(self.hex)
        if octets == bytes(6):
            raise InvalidDeviceId("the all-zero address is not a device id")
        if octets == b"\xff" * 6:
            raise InvalidDeviceId("the broadcast address is not a device id")
        if octets[0] & _MULTICAST_BIT:
            raise InvalidDeviceId(f"{self.hex} is a group (multicast) address, not a device id")

    @classmethod
    def parse(cls, text: str) -> DeviceId:
        """Parse any accepted spelling; raise :class:`InvalidDeviceId` with the reason."""
        if not isinstance(text, str):
            raise InvalidDeviceId(f"a device id is text, not {type(text).__name__}")
        stripped = text.strip()
        if not _PATTERN.fullmatch(stripped):
            raise InvalidDeviceId(
                f"{text!r} is not a device id: expected 12 hex digits, "
                "optionally as six pairs separated by ':' or '-'"
            )
        return cls(re.sub(r"[:-]", "", stripped).upper())

    @classmethod
    def from_bytes(cls, data: bytes) -> DeviceId:
        if len(data) != 6:
            raise InvalidDeviceId(f"a device id is 6 bytes, got {len(data)}")
        return cls(data.hex().upper())

    def __bytes__(self) -> bytes:
        return bytes.fromhex(self.hex)

    def __str__(self) -> str:
        return self.hex

    @property
    def colon(self) -> str:
        """The ``F0:11:22:33:44:55`` spelling, for people and for BLE addresses."""
        return ":".join(self.hex[i : i + 2] for i in range(0, 12, 2))


def _is_hex(text: str) -> bool:
    return all(c in "0123456789ABCDEF" for c in text)
