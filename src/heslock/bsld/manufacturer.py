"""Factory records of simulated BSLDs, and the manufacturer file the RAS imports.

ISO/IEC 14543-5-104: the DDMS knows a lock before it is registered because its maker
imported the lock's id and factory key. This module plays the maker: it draws ids and
keys for N simulated locks and writes the file that ``heslock ras devices import FILE``
reads (and that ``heslock bsld sim`` reads to give each simulated lock its identity). The
file format itself is defined once, in :mod:`heslock.protocol.factory`; reading here is
strict (the first bad record is an error), where the RAS reports every bad line.

Device ids are six random octets with the *locally administered* bit set and the
*group* bit clear (IEEE 802: a unicast address no vendor owns), so they pass
:class:`heslock.protocol.DeviceId` validation and never collide with a real product's
MAC. Factory keys are 16 bytes from :mod:`secrets`. Files are written atomically with mode
0600: they hold factory keys.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from heslock.bsld.config import LockIdentity
from heslock.bsld.persist import write_atomic
from heslock.errors import UsageError
from heslock.protocol import DeviceId, Profile, factory
from heslock.protocol.crypto import KEY_SIZE
from heslock.protocol.factory import COLUMNS, MAX_FILE_BYTES, MAX_RECORDS

__all__ = [
    "COLUMNS",
    "FactoryRecord",
    "ManufacturerFileError",
    "dumps",
    "format_for",
    "generate",
    "loads",
    "random_device_id",
    "read_file",
    "write_file",
]

#: Locally administered (bit 1 set), unicast (bit 0 clear): IEEE 802 first-octet bits.
_LOCAL_BIT: Final = 0x02
_GROUP_BIT: Final = 0x01


class ManufacturerFileError(UsageError):
    """A manufacturer file that cannot be used (the message names the record and why)."""


@dataclass(frozen=True)
class FactoryRecord(factory.FactoryRecord):
    """One lock as its maker knows it, able to become a simulated lock."""

    def __post_init__(self) -> None:
        self.identity()  # the same checks as a lock identity (names, key size, version)

    def identity(self, firmware: tuple[int, int, int, int] = (1, 0, 0, 0)) -> LockIdentity:
        """The simulated lock's identity for this record."""
        return LockIdentity(
            self.device_id,
            self.maker,
            self.model,
            self.profile,
            self.factory_key,
            firmware,
            self.ble_version,
        )


def random_device_id() -> DeviceId:
    """A random locally administered unicast id (see module docstring)."""
    octets = bytearray(secrets.token_bytes(6))
    # Local bit set: never all-zero. Group bit clear: never multicast or broadcast.
    octets[0] = (octets[0] | _LOCAL_BIT) & ~_GROUP_BIT & 0xFF
    return DeviceId.from_bytes(bytes(octets))


def generate(
    count: int,
    maker: str,
    model: str,
    *,
    profile: Profile = Profile.SECURE,
    ble_version: str = "4.2",
    avoid: Iterable[DeviceId] = (),
) -> list[FactoryRecord]:
    """Factory records for ``count`` new locks with distinct ids (none in ``avoid``)."""
    if not 1 <= count <= MAX_RECORDS:
        raise ManufacturerFileError(f"count is 1..{MAX_RECORDS}")
    taken = set(avoid)
    records: list[FactoryRecord] = []
    while len(records) < count:
        device_id = random_device_id()
        if device_id in taken:
            continue
        taken.add(device_id)
        key = secrets.token_bytes(KEY_SIZE)
        records.append(FactoryRecord(device_id, maker, model, ble_version, profile, key))
    return records


def dumps(records: Sequence[FactoryRecord], fmt: str) -> bytes:
    """Serialise ``records`` as ``"json"`` or ``"csv"``."""
    try:
        return factory.dumps(records, fmt)
    except factory.FactoryFileError as exc:
        raise ManufacturerFileError(str(exc)) from None


def loads(data: bytes, fmt: str) -> list[FactoryRecord]:
    """Parse a manufacturer file's bytes; the first bad record is an error naming its line."""
    try:
        lines = factory.parse(data, fmt)
    except factory.FactoryFileError as exc:
        raise ManufacturerFileError(str(exc)) from None
    records: list[FactoryRecord] = []
    for line in lines:
        if line.record is None:
            reasons = ", ".join(line.reasons)
            raise ManufacturerFileError(f"line {line.line}: {reasons}")
        r = line.record
        records.append(
            FactoryRecord(r.device_id, r.maker, r.model, r.ble_version, r.profile, r.factory_key)
        )
    return records


def format_for(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise ManufacturerFileError(f"{path}: the file name must end in .json or .csv")
    return suffix[1:]


def write_file(path: Path, records: Sequence[FactoryRecord]) -> None:
    """Write ``records`` to ``path`` (format from its suffix), atomically, mode 0600."""
    write_atomic(path, dumps(records, format_for(path)))


def read_file(path: Path) -> list[FactoryRecord]:
    """Read and validate a manufacturer file (format from its suffix)."""
    fmt = format_for(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ManufacturerFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return loads(data, fmt)
    except ManufacturerFileError as exc:
        raise ManufacturerFileError(f"{path}: {exc}") from None
