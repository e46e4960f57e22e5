"""The manufacturer file: factory records a lock maker hands to the RAS (DDMS import).

ISO/IEC 14543-5-104: the DDMS knows a BSLD before anyone registers it because its maker
imported the lock's MAC id and factory key. This module is the one definition of that
file, shared by the maker's tooling (``heslock.bsld.manufacturer`` writes it for the
simulated locks) and the RAS (``heslock ras devices import`` reads it)::

    device_id    12 upper-case hex characters (other DeviceId spellings are read too)
    maker        1..24 printable ASCII characters (the maker profile's name)
    model        1..24 printable ASCII characters
    ble_version  "4.0", "4.2" or "5.0"
    profile      "base" (16-byte frames) or "secure" (20-byte frames with a CMAC tag)
    factory_key  32 hex characters (AES-128 key, not all zero)

CSV: UTF-8, a header row with exactly those column names in that order, then one row per
lock. JSON::

    {"format": "heslock-factory-records", "version": 1,
     "devices": [{"device_id": "...", "maker": "...", "model": "...",
                  "ble_version": "4.2", "profile": "secure", "factory_key": "..."}]}

:func:`parse` checks every record on its own and reports each problem with its line (CSV:
the line number in the file; JSON: the record's position, 1-based) and a stable
:class:`Reason`; a file that is not a manufacturer file at all raises
:class:`FactoryFileError`. Reasons never quote a field's value: a shifted CSV column
could otherwise copy a factory key into an error message or a log.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from heslock.errors import UsageError
from heslock.protocol.crypto import KEY_SIZE
from heslock.protocol.errors import InvalidDeviceId
from heslock.protocol.ids import DeviceId
from heslock.protocol.profile import Profile

FORMAT: Final = "heslock-factory-records"
VERSION: Final = 1
COLUMNS: Final = ("device_id", "maker", "model", "ble_version", "profile", "factory_key")
#: One production batch; larger imports are split (keeps one import one transaction).
MAX_RECORDS: Final = 100_000
#: About 110 bytes per record in JSON.
MAX_FILE_BYTES: Final = 16 * 1024 * 1024
#: Maker and model names: short printable ASCII (they are shown and logged).
MAX_NAME_LENGTH: Final = 24
BLE_VERSIONS: Final = frozenset({"4.0", "4.2", "5.0"})
FORMATS: Final = ("csv", "json")


class FactoryFileError(UsageError):
    """Bytes that are not a manufacturer file at all (not UTF-8, not JSON, wrong header,
    too many records). Bad *records* are reported per line instead."""


class Reason(StrEnum):
    """Why a record was refused (stable codes for clients and scripts)."""

    MISSING_FIELD = "missing-field"
    BAD_DEVICE_ID = "bad-device-id"
    DUPLICATE_IN_FILE = "duplicate-in-file"
    ALREADY_KNOWN = "already-known"  #: set by an importer that knows the device already
    BAD_FACTORY_KEY = "bad-factory-key"
    BAD_PROFILE = "bad-profile"
    BAD_MAKER = "bad-maker"
    BAD_MODEL = "bad-model"
    BAD_BLE_VERSION = "bad-ble-version"
    BAD_RECORD = "bad-record"


@dataclass(frozen=True)
class FactoryRecord:
    """One lock as its maker knows it. ``repr`` never shows the key."""

    device_id: DeviceId
    maker: str
    model: str
    ble_version: str
    profile: Profile
    factory_key: bytes = field(repr=False)

    def row(self) -> dict[str, str]:
        """The record as the file's columns."""
        return {
            "device_id": self.device_id.hex,
            "maker": self.maker,
            "model": self.model,
            "ble_version": self.ble_version,
            "profile": self.profile.value,
            "factory_key": self.factory_key.hex(),
        }


@dataclass
class Line:
    """One record of a file and what is wrong with it (nothing: ``record`` is set)."""

    line: int
    device_id: str | None = None
    reasons: list[Reason] = field(default_factory=list)
    record: FactoryRecord | None = None

    def report(self) -> dict[str, Any]:
        return {"line": self.line, "device_id": self.device_id, "reasons": list(self.reasons)}


def check_record(raw: Any, line_no: int) -> Line:
    """Check one record (a mapping of the columns to text); every problem is reported."""
    line = Line(line_no)
    if not isinstance(raw, dict):
        line.reasons.append(Reason.BAD_RECORD)
        return line
    values: dict[str, str] = {}
    for name in COLUMNS:
        value = raw.get(name)
        if not isinstance(value, str):
            line.reasons.append(Reason.MISSING_FIELD)
            return line
        values[name] = value
    device_id = None
    try:
        device_id = DeviceId.parse(values["device_id"])
        line.device_id = device_id.hex
    except InvalidDeviceId:
        line.reasons.append(Reason.BAD_DEVICE_ID)
    if not _printable(values["maker"]):
        line.reasons.append(Reason.BAD_MAKER)
    if not _printable(values["model"]):
        line.reasons.append(Reason.BAD_MODEL)
    if values["ble_version"] not in BLE_VERSIONS:
        line.reasons.append(Reason.BAD_BLE_VERSION)
    profile = None
    try:
        profile = Profile(values["profile"])
    except ValueError:
        line.reasons.append(Reason.BAD_PROFILE)
    key = _factory_key(values["factory_key"])
    if key is None:
        line.reasons.append(Reason.BAD_FACTORY_KEY)
    if device_id is not None and profile is not None and key is not None and not line.reasons:
        line.record = FactoryRecord(
            device_id, values["maker"], values["model"], values["ble_version"], profile, key
        )
    return line


def parse(data: bytes, fmt: str) -> list[Line]:
    """Check every record of a manufacturer file (``fmt``: ``csv`` or ``json``)."""
    if len(data) > MAX_FILE_BYTES:
        raise FactoryFileError(f"larger than {MAX_FILE_BYTES} bytes: split the file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FactoryFileError("the file is not UTF-8 text") from None
    if fmt == "json":
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):
            raise FactoryFileError("the file is not valid JSON") from None
        lines = parse_document(doc)
    elif fmt == "csv":
        lines = _parse_csv(text)
    else:
        raise FactoryFileError(f"unknown format {fmt!r}: csv or json")
    _mark_duplicates(lines)
    return lines


def parse_document(doc: Any) -> list[Line]:
    """Check the records of an already decoded JSON manufacturer document."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise FactoryFileError(f"not a {FORMAT} document")
    if doc.get("version") != VERSION:
        raise FactoryFileError(f"unsupported {FORMAT} version (this reads version {VERSION})")
    devices = doc.get("devices")
    if not isinstance(devices, list):
        raise FactoryFileError("'devices' must be a list")
    _check_count(len(devices))
    lines = [check_record(item, i + 1) for i, item in enumerate(devices)]
    _mark_duplicates(lines)
    return lines


def dumps(records: Sequence[FactoryRecord], fmt: str) -> bytes:
    """Serialise ``records`` as ``"json"`` or ``"csv"`` (device ids must be distinct)."""
    seen: set[DeviceId] = set()
    for record in records:
        if record.device_id in seen:
            raise FactoryFileError(f"device {record.device_id} appears twice")
        seen.add(record.device_id)
    _check_count(len(records))
    if fmt == "json":
        doc = {"format": FORMAT, "version": VERSION, "devices": [r.row() for r in records]}
        return (json.dumps(doc, indent=1) + "\n").encode()
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(r.row() for r in records)
        return out.getvalue().encode()
    raise FactoryFileError(f"unknown format {fmt!r}: csv or json")


def _parse_csv(text: str) -> list[Line]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise FactoryFileError("empty CSV: expected a header row")
        if tuple(h.strip() for h in header) != COLUMNS:
            raise FactoryFileError(f"the CSV header must be: {','.join(COLUMNS)}")
        lines: list[Line] = []
        for row in reader:
            if not row:
                continue
            _check_count(len(lines) + 1)
            if len(row) != len(COLUMNS):
                lines.append(Line(reader.line_num, reasons=[Reason.BAD_RECORD]))
                continue
            lines.append(check_record(dict(zip(COLUMNS, row, strict=True)), reader.line_num))
    except csv.Error:
        raise FactoryFileError(f"CSV syntax error at line {reader.line_num}") from None
    return lines


def _printable(text: str) -> bool:
    return 0 < len(text) <= MAX_NAME_LENGTH and text.isascii() and text.isprintable()


def _factory_key(text: str) -> bytes | None:
    """32 hex digits, not all zero (a zero key is no secret)."""
    if len(text) != 2 * KEY_SIZE:
        return None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        return None
    return key if any(key) else None


def _check_count(n: int) -> None:
    if n > MAX_RECORDS:
        raise FactoryFileError(f"more than {MAX_RECORDS} records: split the file")


def _mark_duplicates(lines: list[Line]) -> None:
    seen: set[str] = set()
    for line in lines:
        if line.device_id is None:
            continue
        if line.device_id in seen and Reason.DUPLICATE_IN_FILE not in line.reasons:
            line.reasons.append(Reason.DUPLICATE_IN_FILE)
            line.record = None
        seen.add(line.device_id)
