"""Maker profiles: how each lock maker's BSLD looks on the air (pure data, no I/O).

ISO/IEC 14543-5-104 lets every maker keep its own BLE identity: the BGW must serve locks
of several makers side by side (ARCHITECTURE.md, "BLE"). A :class:`MakerProfile` is
what a gateway or a client needs to talk to one maker's locks, and what the simulator
needs to behave like them:

- the Bluetooth SIG **company id** carried in the manufacturer-specific advertising data
  (Core Specification Supplement, Part A, 1.4) and the local-name prefix;
- the **GATT frame service**: one primary service with a *frame-in* characteristic
  (write and write-without-response; RAS/RAC -> lock) and a *frame-out* characteristic
  (notify; lock -> RAS/RAC), each by its own 128-bit UUID;
- the **BLE core version** the maker's radio implements, and what follows from it for the
  ATT MTU (BLE 4.0 radios answer an MTU exchange with the default 23; 4.2 added LE Data
  Length Extension and makers allow larger MTUs; 5.0 adds the 2M PHY) — see
  :class:`BleVersion`;
- the **models** the maker sells, each with a one-byte model code for the advertisement.

The three profiles below are fictitious makers for tests and demonstrations. Their company
ids are NOT Bluetooth SIG assignments: they sit at the very top of the 16-bit range
(0xFFF1..0xFFF3), next to 0xFFFF, which the SIG reserves for internal tests, and far from
the ids assigned so far. A production maker puts its own SIG-assigned company id (and
its own UUIDs) in a profile of its own; :func:`register_maker` adds it to the registry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Final

from heslock.errors import UsageError

#: The ATT default MTU (Core Spec Vol 3, Part F, 3.2.8): every BLE 4.0 link starts here.
ATT_DEFAULT_MTU: Final = 23
#: The largest ATT MTU a BLE 5.0 stack negotiates in one LE data PDU of 251 bytes
#: (251 - 4 bytes of L2CAP header = 247).
ATT_MAX_MTU_SINGLE_PDU: Final = 247
#: A common BLE 4.2 MTU (phones and 4.2 chipsets of the era answer 185).
ATT_MTU_BLE_4_2: Final = 185
#: Local names are ``PREFIX-XXXXXX``; the prefix is short so the whole name fits the
#: 31-byte legacy advertisement next to the flags and the manufacturer data.
MAX_NAME_PREFIX: Final = 4
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PREFIX = re.compile(r"[A-Z0-9]{1,4}")


class UnknownMaker(UsageError, LookupError):
    """No maker profile by that name or company id."""


class BleVersion(Enum):
    """BLE core versions of the maker profiles, with their advertisement code."""

    V4_0 = "4.0"
    V4_2 = "4.2"
    V5_0 = "5.0"

    @property
    def code(self) -> int:
        """The one-byte code in the advertisement: major in the high nibble (0x40, 0x42, 0x50)."""
        major, minor = self.value.split(".")
        return int(major) << 4 | int(minor)

    @classmethod
    def from_code(cls, code: int) -> BleVersion:
        for version in cls:
            if version.code == code:
                return version
        raise ValueError(f"unknown BLE version code 0x{code:02X}")


@dataclass(frozen=True, slots=True)
class Model:
    """One model of a maker: its advertisement code and its name."""

    code: int
    name: str

    def __post_init__(self) -> None:
        if not 0 <= self.code <= 0xFF:
            raise ValueError("a model code is one byte")
        if not self.name or not self.name.isascii() or not self.name.isprintable():
            raise ValueError("a model name is printable ASCII")


@dataclass(frozen=True, slots=True)
class MakerProfile:
    """A maker's BLE identity (module docstring). UUIDs are lower-case 128-bit strings."""

    name: str  #: registry key, lower-case (``--profile acme``)
    display_name: str
    company_id: int  #: SIG company id (fictitious here: see the module docstring)
    service_uuid: str
    frame_in_uuid: str  #: write / write-without-response: frames to the lock
    frame_out_uuid: str  #: notify: the lock's answers and events
    ble_version: BleVersion
    #: The largest ATT MTU the lock accepts in an MTU exchange (23 = stays at the default).
    max_mtu: int
    #: Whether the lock's radio offers the LE 2M PHY (BLE 5.0).
    phy_2m: bool
    name_prefix: str
    models: tuple[Model, ...]

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.lower() or not self.name.isidentifier():
            raise ValueError("a maker name is a lower-case identifier")
        if not 0 <= self.company_id <= 0xFFFF:
            raise ValueError("a company id is 16 bits")
        uuids = (self.service_uuid, self.frame_in_uuid, self.frame_out_uuid)
        if not all(_UUID.fullmatch(u) for u in uuids) or len(set(uuids)) != 3:
            raise ValueError("three distinct lower-case 128-bit UUIDs")
        if not ATT_DEFAULT_MTU <= self.max_mtu <= ATT_MAX_MTU_SINGLE_PDU:
            raise ValueError(f"max_mtu is {ATT_DEFAULT_MTU}..{ATT_MAX_MTU_SINGLE_PDU}")
        if self.ble_version is BleVersion.V4_0 and self.max_mtu != ATT_DEFAULT_MTU:
            raise ValueError("a BLE 4.0 profile keeps the default MTU")
        if self.phy_2m and self.ble_version is not BleVersion.V5_0:
            raise ValueError("the 2M PHY needs BLE 5.0")
        if not _PREFIX.fullmatch(self.name_prefix):
            raise ValueError(f"a name prefix is 1..{MAX_NAME_PREFIX} of A-Z 0-9")
        if not self.models or len({m.code for m in self.models}) != len(self.models):
            raise ValueError("at least one model, codes distinct")

    @property
    def mtu_negotiable(self) -> bool:
        """True when a central gains anything by requesting a larger MTU."""
        return self.max_mtu > ATT_DEFAULT_MTU

    def model(self, name_or_code: str | int) -> Model:
        """A model by name (case-insensitive) or code; :class:`UnknownMaker` if none."""
        for model in self.models:
            if model.code == name_or_code or (
                isinstance(name_or_code, str) and model.name.lower() == name_or_code.lower()
            ):
                return model
        raise UnknownMaker(f"maker {self.name!r} has no model {name_or_code!r}")


#: BLE 4.0: the 23-byte MTU, exactly one 16-byte frame or 16 + 4-byte tag per write.
ACME: Final = MakerProfile(
    name="acme",
    display_name="Acme Locks (fictitious, BLE 4.0)",
    company_id=0xFFF1,
    service_uuid="9e3d0001-edaf-4816-be06-3d42fd935c5a",
    frame_in_uuid="9e3d0002-edaf-4816-be06-3d42fd935c5a",
    frame_out_uuid="9e3d0003-edaf-4816-be06-3d42fd935c5a",
    ble_version=BleVersion.V4_0,
    max_mtu=ATT_DEFAULT_MTU,
    phy_2m=False,
    name_prefix="ACME",
    models=(Model(0x01, "A100 Deadbolt"), Model(0x02, "A200 Mortise")),
)

#: BLE 4.2: accepts an MTU exchange up to 185.
KEYSTONE: Final = MakerProfile(
    name="keystone",
    display_name="Keystone Security (fictitious, BLE 4.2)",
    company_id=0xFFF2,
    service_uuid="e84a0001-bb15-4590-b335-3a5e2ee7306c",
    frame_in_uuid="e84a0002-bb15-4590-b335-3a5e2ee7306c",
    frame_out_uuid="e84a0003-bb15-4590-b335-3a5e2ee7306c",
    ble_version=BleVersion.V4_2,
    max_mtu=ATT_MTU_BLE_4_2,
    phy_2m=False,
    name_prefix="KSTN",
    models=(Model(0x10, "K1 Rim Lock"), Model(0x11, "K2 Padlock")),
)

#: BLE 5.0: MTU 247 and the 2M PHY.
LUMEN: Final = MakerProfile(
    name="lumen",
    display_name="Lumen Smart Home (fictitious, BLE 5.0)",
    company_id=0xFFF3,
    service_uuid="949c0001-e647-4e7d-8001-4def0c8d4b5b",
    frame_in_uuid="949c0002-e647-4e7d-8001-4def0c8d4b5b",
    frame_out_uuid="949c0003-e647-4e7d-8001-4def0c8d4b5b",
    ble_version=BleVersion.V5_0,
    max_mtu=ATT_MAX_MTU_SINGLE_PDU,
    phy_2m=True,
    name_prefix="LUMN",
    models=(Model(0x20, "L5 Smart Deadbolt"), Model(0x21, "L5 Lever")),
)

_BY_NAME: dict[str, MakerProfile] = {}
_BY_COMPANY: dict[int, MakerProfile] = {}


def register_maker(profile: MakerProfile) -> None:
    """Add a maker to the registry; names and company ids must be new."""
    if profile.name in _BY_NAME or profile.company_id in _BY_COMPANY:
        raise ValueError(f"maker {profile.name!r} or company id 0x{profile.company_id:04X} taken")
    _BY_NAME[profile.name] = profile
    _BY_COMPANY[profile.company_id] = profile


for _profile in (ACME, KEYSTONE, LUMEN):
    register_maker(_profile)


def makers() -> tuple[MakerProfile, ...]:
    """Every registered maker, in registration order."""
    return tuple(_BY_NAME.values())


def maker_by_name(name: str) -> MakerProfile:
    try:
        return _BY_NAME[name.strip().lower()]
    except KeyError:
        known = ", ".join(_BY_NAME)
        raise UnknownMaker(f"unknown maker {name!r} (known: {known})") from None


def maker_by_company_id(company_id: int) -> MakerProfile:
    try:
        return _BY_COMPANY[company_id]
    except KeyError:
        raise UnknownMaker(f"no maker with company id 0x{company_id:04X}") from None
