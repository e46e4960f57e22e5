"""DDMS manufacturer import (API and CLI) and the legitimacy check, over real HTTPS."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from heslock.bsld.manufacturer import dumps, generate
from heslock.cli import main
from heslock.protocol import Profile
from heslock.ras.keystore import FACTORY_KEY
from heslock.ras.services.ddms.devices import CHECK_POLICY
from heslock.ras.store.models import Device
from tests.integration.ras.ddms.conftest import Ras
from tests.support import auth


async def _devices(ras: Ras) -> dict[str, Device]:
    async with ras.maker()() as session:
        return {d.device_id: d for d in (await session.execute(select(Device))).scalars()}


async def test_import_csv_and_json_and_keys_stay_sealed(ras: Ras) -> None:
    records = generate(3, "Lumen", "L1", profile=Profile.BASE)
    csv_upload = await ras.client.post(
        "/v1/admin/devices/import",
        files={"file": ("batch.csv", dumps(records[:2], "csv"), "text/csv")},
        headers=auth("admin"),
    )
    assert csv_upload.status_code == 200, csv_upload.text
    assert csv_upload.json()["imported"] == 2
    json_body = await ras.client.post(
        "/v1/admin/devices/import",
        content=dumps(records[2:], "json"),
        headers={**auth("admin"), "content-type": "application/json"},
    )
    assert json_body.json()["imported"] == 1
    stored = await _devices(ras)
    assert set(stored) == {r.device_id.hex for r in records}
    for record in records:
        row = stored[record.device_id.hex]
        assert record.factory_key not in row.factory_key_enc  # sealed, not stored
        assert ras.keystore.open(FACTORY_KEY, row.device_id, row.factory_key_enc) == (
            record.factory_key
        )
        assert (row.profile, row.maker, row.status) == ("base", "Lumen", "available")
        view = await ras.client.get(f"/v1/admin/devices/{row.device_id}", headers=auth("admin"))
        assert view.json()["device_id"] == row.device_id
        assert record.factory_key.hex() not in view.text.lower()
    # Importing the same file again: every line already known, nothing changes.
    again = await ras.client.post(
        "/v1/admin/devices/import",
        content=dumps(records, "json"),
        headers={**auth("admin"), "content-type": "application/json"},
    )
    assert again.status_code == 422
    assert [line["reasons"] for line in again.json()["rejected"]] == [["already-known"]] * 3
    # Only administrators import.
    refused = await ras.client.post(
        "/v1/admin/devices/import",
        content=dumps(generate(1, "Lumen", "L1"), "json"),
        headers={**auth("a"), "content-type": "application/json"},
    )
    assert refused.status_code == 403
    assert len(await _devices(ras)) == 3


def _bad_csv() -> tuple[bytes, set[str]]:
    good = generate(2, "Lumen", "L1")
    rows = [r.row() for r in good]
    bad = [
        {**rows[0], "device_id": "ZZ1122334455"},  # line 4
        {**rows[0]},  # line 5: duplicate of line 2
        {**rows[0], "device_id": "021122334499", "factory_key": "00" * 16},  # line 6
        {**rows[0], "device_id": "021122334498", "factory_key": "abc"},  # line 7
        {**rows[0], "device_id": "021122334497", "profile": "turbo"},  # line 8
        {**rows[0], "device_id": "031122334496"},  # line 9: multicast id
        {**rows[0], "device_id": "021122334495", "ble_version": "3.0", "maker": ""},  # line 10
    ]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows + bad)
    out.write("021122334494,only,three\n")  # line 11: short row
    keys = {r.factory_key.hex() for r in good}
    return out.getvalue().encode(), keys


async def test_bad_lines_nothing_imported_or_skipped(ras: Ras) -> None:
    data, keys = _bad_csv()
    response = await ras.client.post(
        "/v1/admin/devices/import",
        content=data,
        headers={**auth("admin"), "content-type": "text/csv"},
    )
    assert response.status_code == 422
    body = response.json()
    assert body["type"].endswith("/import-rejected")
    assert body["committed"] is False
    by_line = {line["line"]: line["reasons"] for line in body["rejected"]}
    assert by_line == {
        4: ["bad-device-id"],
        5: ["duplicate-in-file"],
        6: ["bad-factory-key"],
        7: ["bad-factory-key"],
        8: ["bad-profile"],
        9: ["bad-device-id"],
        10: ["bad-maker", "bad-ble-version"],
        11: ["bad-record"],
    }
    assert not any(key in response.text for key in keys)
    assert await _devices(ras) == {}  # nothing half-imported
    skipped = await ras.client.post(
        "/v1/admin/devices/import?skip_bad=true",
        content=data,
        headers={**auth("admin"), "content-type": "text/csv"},
    )
    assert skipped.status_code == 200
    assert (skipped.json()["imported"], skipped.json()["rejected_count"]) == (2, 8)
    assert len(await _devices(ras)) == 2


async def test_malformed_files(ras: Ras) -> None:
    for content, ctype in (
        (b"{not json", "application/json"),
        (json.dumps({"format": "other"}).encode(), "application/json"),
        (b"id,maker\n", "text/csv"),
        (b"\xff\xfe", "text/csv"),
        (b"x", "application/xml"),
    ):
        response = await ras.client.post(
            "/v1/admin/devices/import",
            content=content,
            headers={**auth("admin"), "content-type": ctype},
        )
        assert response.status_code == 422, content
        assert response.json()["type"].endswith("/invalid-input")


async def test_cli_import(
    ras: Ras, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    records = generate(2, "Lumen", "L1")
    good = tmp_path / "batch.json"
    good.write_bytes(dumps(records, "json"))
    bad = tmp_path / "bad.csv"
    bad.write_bytes(_bad_csv()[0])
    monkeypatch.setenv("HESLOCK_DATABASE_URL", ras.settings.database_url)
    data_dir = ["--data-dir", str(ras.settings.data_dir)]

    async def cli(*args: str) -> int:
        # The CLI runs its own event loop: give it a thread, as a shell would a process.
        return await asyncio.to_thread(main, ["ras", "devices", "import", *args, *data_dir])

    assert await cli(str(good)) == 0
    assert await cli(str(bad)) == 2
    assert len(await _devices(ras)) == 2
    assert await cli(str(bad), "--skip-bad") == 0
    assert await cli(str(tmp_path / "missing.json")) == 2
    out = capsys.readouterr()
    assert "imported 2 of 2" in out.out
    assert "line 6: 021122334499: bad-factory-key" in out.err
    assert not any(r.factory_key.hex() in out.out + out.err for r in records)
    assert len(await _devices(ras)) == 4


async def test_legitimacy_statuses(ras: Ras) -> None:
    async def check(device: str, token: str = "a") -> dict[str, object]:
        response = await ras.client.get(f"/v1/devices/{device}/legitimacy", headers=auth(token))
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    unknown = generate(1, "Lumen", "L1")[0].device_id.hex
    assert await check(unknown) == {"status": 1, "device_id": unknown, "reason": "unknown"}
    not_imported = await ras.client.post(
        "/v1/registrations", json={"device_id": unknown, "name": "x"}, headers=auth("a")
    )
    assert not_imported.status_code == 404
    lock = await ras.new_lock()
    dev = lock.identity.device_id.hex
    assert await check(dev) == {
        "status": 0,
        "device_id": dev,
        "profile": "secure",
        "factory_reset_required": False,
    }
    await ras.start(lock)
    assert (await check(dev, "b"))["reason"] == "registration-in-progress"
    assert (await check(dev, "a"))["status"] == 0  # the caller's own live registration
    lock_id = await ras.relay(lock, await ras.start(lock))
    assert lock_id["phase"] == "committed"
    assert (await check(dev, "b"))["reason"] == "already-bound"
    other = await ras.new_lock()
    revoked = await ras.client.post(
        f"/v1/admin/devices/{other.identity.device_id}/revoke", headers=auth("admin")
    )
    assert revoked.json()["status"] == "revoked"
    assert (await check(other.identity.device_id.colon))["reason"] == "revoked"
    refused = await ras.client.post(
        "/v1/registrations",
        json={"device_id": other.identity.device_id.hex, "name": "x"},
        headers=auth("a"),
    )
    assert refused.status_code == 409
    assert refused.json()["reason"] == "revoked"
    bad = await ras.client.get("/v1/devices/not-an-id/legitimacy", headers=auth("a"))
    assert bad.status_code == 422
    checks = [r for r in await ras.audit_rows() if r.action == "device.check"]
    assert len(checks) >= 6
    assert all(r.actor.startswith("user:") for r in checks)


async def test_legitimacy_is_rate_limited(ras: Ras) -> None:
    device = generate(1, "Lumen", "L1")[0].device_id.hex
    statuses = []
    for _ in range(int(CHECK_POLICY.capacity) + 1):
        response = await ras.client.get(f"/v1/devices/{device}/legitimacy", headers=auth("b"))
        statuses.append(response.status_code)
    assert statuses[:-1] == [200] * int(CHECK_POLICY.capacity)
    assert statuses[-1] == 429
    assert int(response.headers["retry-after"]) >= 1
    # Another user has a bucket of their own; time refills the first.
    other = await ras.client.get(f"/v1/devices/{device}/legitimacy", headers=auth("a"))
    assert other.status_code == 200
    ras.clock.advance(10)
    later = await ras.client.get(f"/v1/devices/{device}/legitimacy", headers=auth("b"))
    assert later.status_code == 200
    denied = [
        r for r in await ras.audit_rows() if r.action == "device.check" and r.result == "denied"
    ]
    assert len(denied) == 1


async def test_device_count_is_consistent(ras: Ras) -> None:
    async with ras.maker()() as session:
        assert (await session.execute(select(func.count()).select_from(Device))).scalar_one() == 0
