"""Factory records of simulated BSLDs, and the manufacturer file the RAS imports.

ISO/IEC 14543-5-104: the DDMS knows a lock before it is registered because its maker
imported the lock's id and factory key. This module plays the maker: it draws ids and
keys for N simulated locks and writes the file that ``heslock ras devices import FILE``
reads (and that ``heslock bsld sim`` reads to give each simulated lock its identity).

Device ids are six random octets with the *locally administered* bit set and the
*group* bit clear (IEEE 802: a unicast address no vendor owns), so they pass
:class:`heslock.protocol.DeviceId` validation and never collide with a real product's
MAC. Factory keys are 16 bytes from :mod:`secrets`.

File formats (chosen by the file name's suffix, ``.json`` or ``.csv``); both carry the
same six columns, one lock per record::

    device_id    12 upper-case hex characters (other DeviceId spellings are read too)
    maker        1..24 printable ASCII characters (the maker profile's name)
    model        1..24 printable ASCII characters
    ble_version  "4.0", "4.2" or "5.0"
    profile      "base" (16-byte frames) or "secure" (20-byte frames with a CMAC tag)
    factory_key  32 hex characters (AES-128 key), the lock's key until it is registered

CSV: UTF-8, a header row with exactly those column names in that order, then one row
per lock. JSON::

    {"format": "heslock-factory-records", "version": 1,
     "devices": [{"device_id": "...", "maker": "...", "model": "...",
                  "ble_version": "4.2", "profile": "secure", "factory_key": "..."}]}

A device id may appear only once per file. Files are written atomically with mode 0600:
they hold factory keys, which the RAS stores encrypted at rest after import.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from heslock.bsld.config import LockConfigError, LockIdentity
from heslock.bsld.persist import write_atomic
from heslock.errors import UsageError
from heslock.protocol import DeviceId, InvalidDeviceId, Profile
from heslock.protocol.crypto import KEY_SIZE

FORMAT: Final = "heslock-factory-records"
VERSION: Final = 1
COLUMNS: Final = ("device_id", "maker", "model", "ble_version", "profile", "factory_key")
#: Locally administered (bit 1 set), unicast (bit 0 clear): IEEE 802 first-octet bits.
_LOCAL_BIT: Final = 0x02
_GROUP_BIT: Final = 0x01
#: A production run of one batch; larger imports are split (and the file stays small).
MAX_RECORDS: Final = 100_000
#: About 110 bytes per record in JSON.
MAX_FILE_BYTES: Final = 16 * 1024 * 1024


class ManufacturerFileError(UsageError):
    """A manufacturer file that cannot be read (the message names the record and field)."""


@dataclass(frozen=True)
class FactoryRecord:
    """One lock as its maker knows it."""

    device_id: DeviceId
    maker: str
    model: str
    ble_version: str
    profile: Profile
    factory_key: bytes

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

    def row(self) -> dict[str, str]:
        return {
            "device_id": self.device_id.hex,
            "maker": self.maker,
            "model": self.model,
            "ble_version": self.ble_version,
            "profile": self.profile.value,
            "factory_key": self.factory_key.hex(),
        }

    @classmethod
    def from_row(cls, row: dict[str, object], where: str) -> FactoryRecord:
        values: dict[str, str] = {}
        for name in COLUMNS:
            value = row.get(name)
            if not isinstance(value, str):
                raise ManufacturerFileError(f"{where}: field {name} missing or not text")
            values[name] = value
        try:
            key = _key(values["factory_key"])
            return cls(
                DeviceId.parse(values["device_id"]),
                values["maker"],
                values["model"],
                values["ble_version"],
                Profile(values["profile"]),
                key,
            )
        except (InvalidDeviceId, LockConfigError, ValueError) as exc:
            raise ManufacturerFileError(f"{where}: {exc}") from None

    def __repr__(self) -> str:
        return (
            f"FactoryRecord({self.device_id}, {self.maker!r}, {self.model!r}, {self.profile.value})"
        )


def _key(text: str) -> bytes:
    key = bytes.fromhex(text)
    if len(key) != KEY_SIZE:
        raise ValueError(f"factory_key is {KEY_SIZE} bytes ({2 * KEY_SIZE} hex)")
    return key


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
    _check_unique(records)
    if fmt == "json":
        doc = {"format": FORMAT, "version": VERSION, "devices": [r.row() for r in records]}
        return (json.dumps(doc, indent=1) + "\n").encode()
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(r.row() for r in records)
        return out.getvalue().encode()
    raise ManufacturerFileError(f"unknown format {fmt!r}: json or csv")


def loads(data: bytes, fmt: str) -> list[FactoryRecord]:
    """Parse and validate a manufacturer file's bytes (``"json"`` or ``"csv"``)."""
    if len(data) > MAX_FILE_BYTES:
        raise ManufacturerFileError(f"larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ManufacturerFileError("not UTF-8 text") from None
    if fmt == "json":
        records = _loads_json(text)
    elif fmt == "csv":
        records = _loads_csv(text)
    else:
        raise ManufacturerFileError(f"unknown format {fmt!r}: json or csv")
    _check_unique(records)
    return records


def _loads_json(text: str) -> list[FactoryRecord]:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise ManufacturerFileError("not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ManufacturerFileError(f"not a {FORMAT} document")
    if doc.get("version") != VERSION:
        raise ManufacturerFileError(f"unsupported version {doc.get('version')!r}")
    devices = doc.get("devices")
    if not isinstance(devices, list):
        raise ManufacturerFileError("devices must be a list")
    _check_count(len(devices))
    records: list[FactoryRecord] = []
    for i, item in enumerate(devices):
        if not isinstance(item, dict):
            raise ManufacturerFileError(f"device {i}: expected an object")
        records.append(FactoryRecord.from_row(item, f"device {i}"))
    return records


def _loads_csv(text: str) -> list[FactoryRecord]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ManufacturerFileError("empty CSV: expected a header row") from None
    except csv.Error as exc:
        raise ManufacturerFileError(f"CSV: {exc}") from None
    if tuple(h.strip() for h in header) != COLUMNS:
        raise ManufacturerFileError(f"CSV header must be: {','.join(COLUMNS)}")
    records: list[FactoryRecord] = []
    try:
        for row in reader:
            if not row:
                continue
            where = f"line {reader.line_num}"
            if len(row) != len(COLUMNS):
                raise ManufacturerFileError(f"{where}: expected {len(COLUMNS)} columns")
            _check_count(len(records) + 1)
            records.append(FactoryRecord.from_row(dict(zip(COLUMNS, row, strict=True)), where))
    except csv.Error as exc:
        raise ManufacturerFileError(f"CSV line {reader.line_num}: {exc}") from None
    return records


def _check_count(n: int) -> None:
    if n > MAX_RECORDS:
        raise ManufacturerFileError(f"more than {MAX_RECORDS} records")


def _check_unique(records: Sequence[FactoryRecord]) -> None:
    seen: set[DeviceId] = set()
    for r in records:
        if r.device_id in seen:
            raise ManufacturerFileError(f"device {r.device_id} appears twice")
        seen.add(r.device_id)


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
