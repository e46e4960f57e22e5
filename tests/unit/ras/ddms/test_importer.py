"""The DDMS manufacturer-file parser: every reason, its line, and no value echoed."""

from __future__ import annotations

import json

import pytest

from heslock.bsld.manufacturer import dumps, generate
from heslock.protocol import Profile
from heslock.ras.services.ddms.importer import FactoryRecord, Reason, parse
from heslock.ras.services.errors import InvalidInput


def test_reads_what_the_maker_tooling_writes() -> None:
    records = generate(3, "Lumen", "L1", profile=Profile.BASE, ble_version="5.0")
    for fmt in ("csv", "json"):
        lines = parse(dumps(records, fmt), fmt)
        got = [line.record for line in lines]
        assert [r.device_id if r else None for r in got] == [r.device_id for r in records]
        assert all(r is not None and r.profile is Profile.BASE for r in got)
        assert [r.factory_key for r in got if r] == [r.factory_key for r in records]
        assert [line.line for line in lines] == ([2, 3, 4] if fmt == "csv" else [1, 2, 3])


def test_every_bad_kind_is_reported_on_its_line() -> None:
    good = generate(1, "Lumen", "L1")[0].row()
    devices: list[object] = [
        good,
        {**good, "device_id": "nonsense"},
        {**good},
        {**good, "device_id": "021122334401", "factory_key": "zz" * 16},
        {**good, "device_id": "021122334402", "profile": "fast"},
        {**good, "device_id": "021122334403", "model": "x" * 25},
        {k: v for k, v in good.items() if k != "maker"},
        "not an object",
    ]
    doc = {"format": "heslock-factory-records", "version": 1, "devices": devices}
    lines = parse(json.dumps(doc).encode(), "json")
    assert [(line.line, line.reasons) for line in lines] == [
        (1, []),
        (2, [Reason.BAD_DEVICE_ID]),
        (3, [Reason.DUPLICATE_IN_FILE]),
        (4, [Reason.BAD_FACTORY_KEY]),
        (5, [Reason.BAD_PROFILE]),
        (6, [Reason.BAD_MODEL]),
        (7, [Reason.MISSING_FIELD]),
        (8, [Reason.BAD_RECORD]),
    ]
    assert good["factory_key"] not in str([line.report() for line in lines])


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b"", "csv"),
        (b"a,b\n", "csv"),
        (b'"unterminated\n', "csv"),
        (b"[]", "json"),
        (b'{"format": "heslock-factory-records", "version": 2, "devices": []}', "json"),
        (b"\xc3\x28", "json"),
        (b"{}", "xml"),
    ],
)
def test_files_that_are_not_manufacturer_files(data: bytes, fmt: str) -> None:
    with pytest.raises(InvalidInput):
        parse(data, fmt)


def test_record_repr_hides_the_key() -> None:
    record = generate(1, "Lumen", "L1")[0]
    ours = parse(dumps([record], "csv"), "csv")[0].record
    assert isinstance(ours, FactoryRecord)
    assert record.factory_key.hex() not in repr(ours)
    assert repr(record.factory_key) not in repr(ours)
