"""Across sockets and processes: the radio hub, and ``heslock bsld sim`` as its own program."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from heslock.ble.central import FrameCentral
from heslock.ble.errors import LinkSpecError
from heslock.ble.hub import RadioHub
from heslock.ble.transport import LinkKind, LinkSpec, Radio, open_radio
from heslock.bsld import SimulatedLock
from heslock.bsld.manufacturer import generate, read_file
from heslock.bsld.peripheral import LockPeripheral
from heslock.bsld.sim import control_request
from heslock.protocol import BoltState, EventType, OperationOp, Profile
from heslock.protocol.makers import ACME, KEYSTONE
from tests.integration.ble.air import Clock, EventQueue, Ras

#: A subprocess imports bumble and the project: allow it a moment on a busy 2-core box.
PROCESS_START_S = 30.0
CLI = [sys.executable, "-c", "import sys; from heslock.cli import main; sys.exit(main())"]


@pytest.fixture
async def hub() -> AsyncIterator[RadioHub]:
    radio_hub = RadioHub()
    await radio_hub.start_tcp("127.0.0.1", 0)
    try:
        yield radio_hub
    finally:
        await radio_hub.close()


def test_link_specs() -> None:
    assert LinkSpec.parse("local").kind is LinkKind.LOCAL
    assert LinkSpec.parse("hub:127.0.0.1:17000").transport == "tcp-client:127.0.0.1:17000"
    assert LinkSpec.parse("hub:unix:/run/hub.sock").transport == "unix:/run/hub.sock"
    assert LinkSpec.parse("usb:0").kind is LinkKind.HCI
    assert str(LinkSpec.parse("hub:127.0.0.1:17000")) == "hub:127.0.0.1:17000"
    assert not LinkSpec.parse("hci-socket:0").is_virtual
    for bad in ("hub:", "hub:host", "hub:h:99999", "bogus:1", ""):
        with pytest.raises(LinkSpecError):
            LinkSpec.parse(bad)


async def _central(spec: str) -> tuple[Radio, FrameCentral]:
    radio = await open_radio(spec, "central", "C0:00:00:00:00:09")
    await radio.device.power_on()
    return radio, FrameCentral(radio.device, connect_timeout_s=3.0, gatt_timeout_s=3.0)


async def test_hub_carries_a_lock_and_tells_peers_when_a_radio_dies(hub: RadioHub) -> None:
    await _lock_and_central_through(hub, f"hub:127.0.0.1:{hub.port}")


async def test_hub_on_a_unix_socket(tmp_path: Path) -> None:
    radio_hub = RadioHub()
    await radio_hub.start_unix(tmp_path / "hub.sock")
    try:
        assert (tmp_path / "hub.sock").stat().st_mode & 0o777 == 0o600
        await _lock_and_central_through(radio_hub, f"hub:unix:{tmp_path / 'hub.sock'}")
    finally:
        await radio_hub.close()
    assert not (tmp_path / "hub.sock").exists()


async def _lock_and_central_through(hub: RadioHub, spec: str) -> None:
    record = generate(1, "keystone", KEYSTONE.models[0].name, ble_version="4.2")[0]
    lock = SimulatedLock(record.identity())
    lock_radio = await open_radio(spec, "lock", record.device_id.colon)
    peripheral = LockPeripheral(lock, KEYSTONE, lock_radio.device, advertising_interval_ms=20)
    central_radio, central = await _central(spec)
    try:
        await peripheral.start()
        assert hub.radio_count == 2
        peripheral.press(lock.press_registration_button)
        link = await central.connect(record.device_id.colon, KEYSTONE)
        ras = Ras(record.device_id, record.profile, record.factory_key, Clock())
        await ras.register(link)
        assert ras.refusal(await link.request(ras.bolt(OperationOp.UNLOCK))) is None

        # The lock's radio goes away without a word (a killed process): the hub tells
        # the central at once instead of leaving it to a 30 s GATT timeout.
        await lock_radio.close()
        await link.wait_disconnected(2.0)
    finally:
        await peripheral.stop(graceful=False)  # its radio is gone (or the test failed)
        await lock_radio.close()
        await central.close()
        await central_radio.close()


async def _read_ready(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    while True:
        line = (await asyncio.wait_for(process.stdout.readline(), PROCESS_START_S)).decode()
        if not line:
            raise AssertionError("the simulator exited before it was ready")
        if line.startswith("ready:"):
            return line


async def _start_sim(data_dir: Path, spec: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        *CLI,
        "bsld",
        "sim",
        "--count",
        "2",
        "--profile",
        "acme",
        "--base",
        "--data-dir",
        str(data_dir),
        "--link",
        spec,
        "--advertising-interval-ms",
        "20",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await _read_ready(process)
    except BaseException:
        process.kill()
        await process.wait()
        raise
    return process


async def _stop(process: asyncio.subprocess.Process) -> int:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(process.wait(), 10.0)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise


async def _cli(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), PROCESS_START_S)
    assert process.returncode is not None
    return process.returncode, (out + err).decode()


async def test_simulator_as_a_separate_program(hub: RadioHub, tmp_path: Path) -> None:
    spec = f"hub:127.0.0.1:{hub.port}"
    data_dir = tmp_path / "d"
    sim = await _start_sim(data_dir, spec)
    central_radio, central = await _central(spec)
    try:
        records = read_file(data_dir / "manufacturer.json")
        assert len(records) == 2
        assert {r.maker for r in records} == {"acme"}
        assert (data_dir / "manufacturer.csv").exists()
        record = records[0]
        device = str(record.device_id)

        seen = await central.scan_for(5.0, device_id=record.device_id)
        assert seen.found.advert.profile is Profile.BASE
        assert seen.found.advert.company_id == ACME.company_id

        code, out = await _cli(
            "bsld", "press", "--data-dir", str(data_dir), "--device", device, "registration"
        )
        assert code == 0, out
        assert json.loads(out)["registration_open"] is True

        link = await central.connect(seen.address, ACME)
        events = EventQueue(link)
        ras = Ras(record.device_id, record.profile, record.factory_key, Clock())
        await ras.register(link)
        assert ras.refusal(await link.request(ras.bolt(OperationOp.UNLOCK))) is None
        await events.next()  # REMOTE_OPERATION

        code, out = await _cli(
            "bsld", "press", "--data-dir", str(data_dir), "--device", device, "door-open"
        )
        assert code == 0, out
        frame, _ = ras.open(await events.next())
        assert EventType(frame.type) is EventType.DOOR

        code, out = await _cli(
            "bsld", "press", "--data-dir", str(data_dir), "--device", device, "battery", "150"
        )
        assert code == 2
        assert "battery" in out

        assert await _stop(sim) == 0
        await link.wait_disconnected(3.0)

        # A later run reloads the same fleet and each lock's state.
        sim = await _start_sim(data_dir, spec)
        status = await asyncio.to_thread(control_request, data_dir, {"cmd": "status"})
        by_id = {lock["device"]: lock for lock in status["locks"]}
        assert set(by_id) == {str(r.device_id) for r in records}
        assert by_id[device]["bound"] is True
        assert by_id[device]["bolt"] == BoltState.UNLOCKED.name.lower()
        assert by_id[device]["door"] == "open"
    finally:
        await _stop(sim)
        await central.close()
        await central_radio.close()
