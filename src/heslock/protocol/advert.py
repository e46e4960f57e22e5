"""The BSLD's advertisement: manufacturer-specific data and local name (pure codec).

ISO/IEC 14543-5-104 registration starts with discovery: the lock advertises its 6-byte
MAC id, and "manufacturer-specific data also carries maker, model, BLE version and a
bound/unbound flag" (ARCHITECTURE.md, "Registration", step 1). A BGW scan or a RAC reads
it, asks the RAS (DDMS) whether the device is genuine and free, and only then connects.

Manufacturer-specific data (AD type 0xFF, Core Specification Supplement Part A, 1.4): the
company id (uint16 little-endian, as the Supplement fixes it), then heslock's payload::

    offset  size  field
    0       2     company id (LE)      the maker's (see heslock.protocol.makers)
    2       1     format version       ADVERT_FORMAT_VERSION; others are refused
    3       6     device id            the DDMS id, as DeviceId bytes
    9       1     model code           the maker's model table
    10      1     BLE version          0x40 / 0x42 / 0x50 (BleVersion.code)
    11      1     flags                bit 0 secure profile, bit 1 bound,
                                       bit 2 registration window open; bits 3..7 zero
    12      1     battery              percent, 0..100

13 bytes, 15 with the AD header. With the flags AD (3 bytes) and a local name
``PREFIX-XXXXXX`` (2 + up to 11 bytes) the advertisement fits the 31 bytes of a legacy
advertising PDU (Core Spec Vol 6, Part B, 2.3.1), so a BLE 4.0 scanner sees all of it
without a scan request.

The advertisement is plaintext and unauthenticated by nature: anyone can forge one. It is
a hint for discovery, never a proof; the RAS decides legitimacy (DDMS) and the lock proves
possession of its key in key negotiation.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Final

from heslock.errors import PeerError
from heslock.protocol.errors import InvalidDeviceId
from heslock.protocol.ids import DeviceId
from heslock.protocol.makers import MAX_NAME_PREFIX, BleVersion
from heslock.protocol.profile import Profile

#: The only payload layout this code reads; a new layout gets a new number.
ADVERT_FORMAT_VERSION: Final = 1
#: Company id + payload (module docstring).
MANUFACTURER_DATA_SIZE: Final = 13
#: A legacy advertising PDU carries at most 31 bytes of AD structures.
MAX_LEGACY_ADVERTISING_DATA: Final = 31
#: Flags AD value: LE General Discoverable Mode, BR/EDR Not Supported (Supplement A, 1.3).
LE_GENERAL_DISCOVERABLE_NO_BREDR: Final = 0x06
#: Characters of the device id (its last three octets) in the local name.
NAME_ID_CHARS: Final = 6


class InvalidAdvert(PeerError, ValueError):
    """Advertising bytes that are not a heslock lock advertisement (the message says why)."""


class AdType(IntEnum):
    """AD types used here (Bluetooth Assigned Numbers, "Common Data Types")."""

    FLAGS = 0x01
    SHORTENED_LOCAL_NAME = 0x08
    COMPLETE_LOCAL_NAME = 0x09
    MANUFACTURER_SPECIFIC_DATA = 0xFF


class AdvertFlag(IntFlag):
    SECURE = 0x01
    BOUND = 0x02
    REGISTRATION_OPEN = 0x04


_KNOWN_FLAGS: Final = int(AdvertFlag.SECURE | AdvertFlag.BOUND | AdvertFlag.REGISTRATION_OPEN)


@dataclass(frozen=True, slots=True)
class LockAdvert:
    """The manufacturer-specific data of one BSLD advertisement."""

    company_id: int
    device_id: DeviceId
    model_code: int
    ble_version: BleVersion
    profile: Profile
    bound: bool
    battery: int
    registration_open: bool = False
    version: int = ADVERT_FORMAT_VERSION

    def __post_init__(self) -> None:
        if not 0 <= self.company_id <= 0xFFFF:
            raise ValueError("a company id is 16 bits")
        if not 0 <= self.model_code <= 0xFF:
            raise ValueError("a model code is one byte")
        if not 0 <= self.battery <= 100:
            raise ValueError("battery percent is 0..100")
        if self.version != ADVERT_FORMAT_VERSION:
            raise ValueError(f"advertisement format version is {ADVERT_FORMAT_VERSION}")

    @property
    def flags(self) -> AdvertFlag:
        flags = AdvertFlag(0)
        if self.profile is Profile.SECURE:
            flags |= AdvertFlag.SECURE
        if self.bound:
            flags |= AdvertFlag.BOUND
        if self.registration_open:
            flags |= AdvertFlag.REGISTRATION_OPEN
        return flags

    def __bytes__(self) -> bytes:
        return (
            self.company_id.to_bytes(2, "little")
            + bytes((self.version,))
            + bytes(self.device_id)
            + bytes((self.model_code, self.ble_version.code, self.flags, self.battery))
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> LockAdvert:
        """Decode manufacturer-specific data strictly; :class:`InvalidAdvert` says why."""
        if len(data) != MANUFACTURER_DATA_SIZE:
            raise InvalidAdvert(
                f"lock manufacturer data is {MANUFACTURER_DATA_SIZE} bytes, got {len(data)}"
            )
        if data[2] != ADVERT_FORMAT_VERSION:
            raise InvalidAdvert(f"unsupported advertisement format version {data[2]}")
        try:
            device_id = DeviceId.from_bytes(bytes(data[3:9]))
        except InvalidDeviceId as exc:
            raise InvalidAdvert(f"bad device id: {exc}") from None
        try:
            ble_version = BleVersion.from_code(data[10])
        except ValueError as exc:
            raise InvalidAdvert(str(exc)) from None
        flags = data[11]
        if flags & ~_KNOWN_FLAGS:
            raise InvalidAdvert(f"reserved flag bits set: 0x{flags:02X}")
        if data[12] > 100:
            raise InvalidAdvert(f"battery {data[12]} % is over 100")
        return cls(
            company_id=int.from_bytes(data[0:2], "little"),
            device_id=device_id,
            model_code=data[9],
            ble_version=ble_version,
            profile=Profile.SECURE if flags & AdvertFlag.SECURE else Profile.BASE,
            bound=bool(flags & AdvertFlag.BOUND),
            battery=data[12],
            registration_open=bool(flags & AdvertFlag.REGISTRATION_OPEN),
        )


def local_name(prefix: str, device_id: DeviceId) -> str:
    """The lock's local name: ``PREFIX-`` and the last three octets of its id."""
    if not 1 <= len(prefix) <= MAX_NAME_PREFIX or not prefix.isascii():
        raise ValueError(f"a name prefix is 1..{MAX_NAME_PREFIX} ASCII characters")
    return f"{prefix}-{device_id.hex[-NAME_ID_CHARS:]}"


def encode_ad_structures(structures: list[tuple[int, bytes]]) -> bytes:
    """Length-type-value AD structures (Core Spec Vol 3, Part C, 11)."""
    out = bytearray()
    for ad_type, value in structures:
        if not 0 <= ad_type <= 0xFF or len(value) > 0xFE:
            raise ValueError("an AD structure has a one-byte type and at most 254 value bytes")
        out += bytes((len(value) + 1, ad_type)) + value
    return bytes(out)


def decode_ad_structures(data: bytes) -> list[tuple[int, bytes]]:
    """Split advertising data into (type, value) pairs.

    A zero length byte ends the significant part (the rest is padding and must be zero,
    Core Spec Vol 3, Part C, 11); a structure running past the end is refused.
    """
    structures: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(data):
        length = data[offset]
        if length == 0:
            if any(data[offset:]):
                raise InvalidAdvert("non-zero bytes after the end of the advertising data")
            break
        end = offset + 1 + length
        if end > len(data):
            raise InvalidAdvert(f"AD structure at offset {offset} runs past the end")
        structures.append((data[offset + 1], bytes(data[offset + 2 : end])))
        offset = end
    return structures


def advertising_data(advert: LockAdvert, name: str) -> bytes:
    """The whole legacy advertising payload: flags, manufacturer data, complete name."""
    data = encode_ad_structures(
        [
            (AdType.FLAGS, bytes((LE_GENERAL_DISCOVERABLE_NO_BREDR,))),
            (AdType.MANUFACTURER_SPECIFIC_DATA, bytes(advert)),
            (AdType.COMPLETE_LOCAL_NAME, name.encode("ascii")),
        ]
    )
    if len(data) > MAX_LEGACY_ADVERTISING_DATA:
        raise ValueError(f"advertising data is {len(data)} bytes, over 31")
    return data


@dataclass(frozen=True, slots=True)
class DiscoveredLock:
    """What a scanner learns from one advertisement."""

    advert: LockAdvert
    name: str | None


def find_lock_advert(data: bytes, company_ids: frozenset[int] | None = None) -> DiscoveredLock:
    """Read a lock advertisement out of advertising data.

    ``company_ids`` limits the makers accepted (a BGW passes the makers it serves).
    Raises :class:`InvalidAdvert` when there is none, or when it is malformed.
    """
    advert: LockAdvert | None = None
    name: str | None = None
    for ad_type, value in decode_ad_structures(data):
        if ad_type == AdType.MANUFACTURER_SPECIFIC_DATA and len(value) >= 2:
            company = int.from_bytes(value[:2], "little")
            if company_ids is not None and company not in company_ids:
                continue
            if advert is not None:
                raise InvalidAdvert("two lock manufacturer data structures")
            advert = LockAdvert.from_bytes(value)
        elif ad_type in (AdType.COMPLETE_LOCAL_NAME, AdType.SHORTENED_LOCAL_NAME):
            try:
                name = value.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidAdvert("the local name is not UTF-8") from None
    if advert is None:
        raise InvalidAdvert("no lock manufacturer data in the advertisement")
    return DiscoveredLock(advert, name)
