"""The manufacturer file format (heslock.protocol.factory): every reason, both formats."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heslock.protocol import DeviceId, Profile
from heslock.protocol.factory import (
    COLUMNS,
    FORMAT,
    MAX_RECORDS,
    FactoryFileError,
    FactoryRecord,
    Reason,
    dumps,
    parse,
    parse_document,
)

KEY = bytes(range(1, 17))
GOOD = {
    "device_id": "F2:11:22:33:44:55",
    "maker": "acme",
    "model": "A1",
    "ble_version": "4.0",
    "profile": "secure",
    "factory_key": KEY.hex(),
}


def record(device: str = "F21122334455") -> FactoryRecord:
    return FactoryRecord(DeviceId.parse(device), "acme", "A1", "4.0", Profile.SECURE, KEY)


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_round_trip(fmt: str) -> None:
    records = [record("F21122334455"), record("F61122334455")]
    lines = parse(dumps(records, fmt), fmt)
    assert [line.record for line in lines] == records
    assert all(not line.reasons for line in lines)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"device_id": "01:00:5E:00:00:01"}, Reason.BAD_DEVICE_ID),
        ({"maker": ""}, Reason.BAD_MAKER),
        ({"maker": "x" * 25}, Reason.BAD_MAKER),
        ({"model": "caf\u00e9"}, Reason.BAD_MODEL),
        ({"ble_version": "3.0"}, Reason.BAD_BLE_VERSION),
        ({"profile": "fancy"}, Reason.BAD_PROFILE),
        ({"factory_key": "00" * 16}, Reason.BAD_FACTORY_KEY),
        ({"factory_key": "zz" * 16}, Reason.BAD_FACTORY_KEY),
        ({"factory_key": "11" * 15}, Reason.BAD_FACTORY_KEY),
        ({"maker": None}, Reason.MISSING_FIELD),
    ],
)
def test_each_bad_field_is_reported_without_its_value(
    change: dict[str, object], reason: Reason
) -> None:
    bad = {**GOOD, **change}
    doc = {
        "format": FORMAT,
        "version": 1,
        "devices": [GOOD | {"device_id": "F6:11:22:33:44:55"}, bad],
    }
    lines = parse(json.dumps(doc).encode(), "json")
    assert lines[0].record is not None
    assert lines[1].record is None
    assert lines[1].reasons == [reason]
    assert lines[1].line == 2
    assert KEY.hex() not in json.dumps(lines[1].report())


def test_duplicates_and_bad_rows_in_csv() -> None:
    row = ",".join(GOOD[c] for c in COLUMNS)
    text = ",".join(COLUMNS) + f"\n{row}\n{row}\nshort,row\n"
    lines = parse(text.encode(), "csv")
    assert [line.reasons for line in lines] == [[], [Reason.DUPLICATE_IN_FILE], [Reason.BAD_RECORD]]
    assert [line.line for line in lines] == [2, 3, 4]


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b"\xff\xfe", "csv"),
        (b"", "csv"),
        (b"device_id,maker\n", "csv"),
        (b"{not json", "json"),
        (b"[]", "json"),
        (json.dumps({"format": FORMAT, "version": 2, "devices": []}).encode(), "json"),
        (json.dumps({"format": FORMAT, "version": 1, "devices": {}}).encode(), "json"),
        (b"x", "xml"),
    ],
)
def test_what_is_not_a_manufacturer_file(data: bytes, fmt: str) -> None:
    with pytest.raises(FactoryFileError):
        parse(data, fmt)


def test_limits_and_writer_refusals() -> None:
    with pytest.raises(FactoryFileError, match="twice"):
        dumps([record(), record()], "csv")
    with pytest.raises(FactoryFileError, match="unknown format"):
        dumps([record()], "xml")
    with pytest.raises(FactoryFileError, match="records"):
        parse_document({"format": FORMAT, "version": 1, "devices": [{}] * (MAX_RECORDS + 1)})
    assert KEY.hex() not in repr(record())


@given(st.binary(max_size=300), st.sampled_from(["csv", "json"]))
def test_any_bytes_parse_or_fail_cleanly(data: bytes, fmt: str) -> None:
    try:
        lines = parse(data, fmt)
    except FactoryFileError:
        return
    for line in lines:
        assert (line.record is None) == bool(line.reasons)
