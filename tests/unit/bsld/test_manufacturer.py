"""Factory records and the manufacturer file the RAS imports."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from heslock.bsld import FactoryRecord, ManufacturerFileError, SimulatedLock
from heslock.bsld.manufacturer import (
    COLUMNS,
    dumps,
    generate,
    loads,
    random_device_id,
    read_file,
    write_file,
)
from heslock.protocol import DeviceId, Profile
from tests.unit.bsld.ras import T0, Ras


def test_generated_ids_are_unicast_locally_administered_and_distinct() -> None:
    records = generate(200, "Acme", "A1", profile=Profile.BASE, ble_version="4.0")
    ids = [r.device_id for r in records]
    assert len(set(ids)) == 200
    for device_id in ids:
        first = bytes(device_id)[0]
        assert first & 0x02
        assert not first & 0x01
        assert DeviceId.parse(device_id.colon) == device_id
    assert len({r.factory_key for r in records}) == 200
    assert all(len(r.factory_key) == 16 for r in records)
    assert {(r.maker, r.model, r.profile, r.ble_version) for r in records} == {
        ("Acme", "A1", Profile.BASE, "4.0")
    }


def test_generate_avoids_given_ids() -> None:
    taken = {random_device_id() for _ in range(5)}
    assert not taken & {r.device_id for r in generate(50, "Acme", "A1", avoid=taken)}


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_file_round_trip(tmp_path: Path, suffix: str) -> None:
    records = generate(5, "Bolt Co", "B-2", profile=Profile.SECURE, ble_version="5.0")
    path = tmp_path / f"batch{suffix}"
    write_file(path, records)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_file(path) == records


def test_csv_layout_is_the_documented_one() -> None:
    record = generate(1, "Acme", "A1")[0]
    lines = dumps([record], "csv").decode().splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert lines[1].split(",") == [
        record.device_id.hex,
        "Acme",
        "A1",
        "4.2",
        "secure",
        record.factory_key.hex(),
    ]


def test_a_record_makes_a_lock_that_registers() -> None:
    record = generate(1, "Acme", "A1", profile=Profile.BASE)[0]
    lock = SimulatedLock(record.identity())
    lock.press_registration_button(T0)
    Ras(lock).negotiate(T0)
    assert lock.status(T0).bound


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "header"),
        ("device_id,maker\n", "header"),
        (",".join(COLUMNS) + "\nF21122334455,Acme,A1,4.2,secure,00\n", "line 2: bad-factory-key"),
        (",".join(COLUMNS) + "\nF31122334455,Acme,A1,4.2,secure," + "00" * 16 + "\n", "line 2"),
        (",".join(COLUMNS) + "\nF21122334455,Acme,A1,3.0,secure," + "00" * 16 + "\n", "ble"),
        (",".join(COLUMNS) + "\nF21122334455,Acme,A1,4.2,fancy," + "00" * 16 + "\n", "line 2"),
        (",".join(COLUMNS) + "\nF21122334455,Acme\n", "bad-record"),
        (
            ",".join(COLUMNS) + ("\nF21122334455,Acme,A1,4.2,base," + "11" * 16) * 2 + "\n",
            "duplicate-in-file",
        ),
    ],
)
def test_bad_csv_is_refused_with_the_place(text: str, message: str) -> None:
    with pytest.raises(ManufacturerFileError, match=message):
        loads(text.encode(), "csv")


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        '{"format": "heslock-factory-records", "version": 2, "devices": []}',
        '{"format": "heslock-factory-records", "version": 1, "devices": {}}',
        '{"format": "heslock-factory-records", "version": 1, "devices": [{"maker": "x"}]}',
        "{not json",
    ],
)
def test_bad_json_is_refused(text: str) -> None:
    with pytest.raises(ManufacturerFileError):
        loads(text.encode(), "json")


def test_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ManufacturerFileError, match=r"\.json or \.csv"):
        write_file(tmp_path / "batch.txt", generate(1, "Acme", "A1"))
    with pytest.raises(ManufacturerFileError, match="cannot read"):
        read_file(tmp_path / "none.csv")


def test_record_repr_hides_the_key() -> None:
    record = generate(1, "Acme", "A1")[0]
    assert record.factory_key.hex() not in repr(record)
    assert record.factory_key.hex() not in repr(record.identity())
    assert isinstance(record, FactoryRecord)
