"""Malformed traffic and link churn: the lock never crashes and stays usable."""

from __future__ import annotations

import asyncio
import os

import pytest

from heslock.ble.central import FrameLink
from heslock.ble.errors import BleError, LinkLost
from heslock.bsld import LockConfig
from heslock.bsld.peripheral import IDLE_REASON, REFUSE_REASON, LockPeripheral
from heslock.protocol import OperationOp, Profile, ReasonCode
from heslock.protocol.makers import ACME, LUMEN
from tests.integration.ble.air import Air, Ras

#: Every garbage write counts as a wrong attempt: keep the lockout out of the way here.
PATIENT = LockConfig(wrong_attempt_limit=255)


async def _bound(
    air: Air, profile: Profile = Profile.SECURE
) -> tuple[LockPeripheral, Ras, FrameLink]:
    peripheral, ras = await air.add_lock(ACME, profile, config=PATIENT)
    peripheral.press(peripheral.lock.press_registration_button)
    link = await air.connect(peripheral)
    await ras.register(link)
    return peripheral, ras, link


async def _still_usable(ras: Ras, link: FrameLink) -> None:
    assert ras.refusal(await link.request(ras.bolt(OperationOp.UNLOCK))) is None
    assert ras.refusal(await link.request(ras.bolt(OperationOp.LOCK))) is None


@pytest.mark.parametrize("profile", list(Profile), ids=lambda p: p.value)
async def test_writes_of_every_length_get_an_answer(air: Air, profile: Profile) -> None:
    _, ras, link = await _bound(air, profile)
    assert link.mtu == 23  # BLE 4.0: longer writes become ATT long writes
    for length in range(65):
        reason = ras.refusal(await link.request(os.urandom(length)))
        if length == profile.wire_size:
            assert reason in {
                ReasonCode.BAD_TAG,
                ReasonCode.BAD_CHECK,
                ReasonCode.UNKNOWN_COMMAND,
                ReasonCode.BAD_VALUE,
            }
        else:
            assert reason is ReasonCode.BAD_LENGTH, length
    await _still_usable(ras, link)


async def test_writes_without_response_are_answered_too(air: Air) -> None:
    _, ras, link = await _bound(air)
    answers: asyncio.Queue[bytes] = asyncio.Queue()
    link.add_listener(answers.put_nowait)
    for length in (0, 1, 19, 21, 64):
        await link.send(os.urandom(length), with_response=False)
        assert ras.refusal(await asyncio.wait_for(answers.get(), 2)) is ReasonCode.BAD_LENGTH
    await _still_usable(ras, link)


async def test_writes_to_the_wrong_characteristic_are_refused(air: Air) -> None:
    _, ras, link = await _bound(air)
    with pytest.raises(BleError, match="WRITE_NOT_PERMITTED"):
        await link.write_to(link.frame_out_handle, ras.bolt(OperationOp.UNLOCK))
    with pytest.raises(BleError, match="INVALID_HANDLE"):
        await link.write_to(0xFFF0, b"\x01")
    await _still_usable(ras, link)


async def test_connect_disconnect_storm(air: Air) -> None:
    peripheral, ras, link = await _bound(air)
    await link.close()
    for cycle in range(30):
        storm = await air.connect(peripheral)
        if cycle % 3 == 0:  # some cycles leave a frame half-way
            await storm.send(os.urandom(7), with_response=False)
        await storm.close()
        await storm.wait_disconnected(2.0)
    assert peripheral.central is None
    await _still_usable(ras, await air.connect(peripheral))


async def test_a_second_central_is_refused(air: Air) -> None:
    peripheral, ras, link = await _bound(air)
    second = await air.start_central("C0:00:00:00:00:02")
    connection = await second.device.connect(peripheral.device.random_address)
    gone: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    connection.on("disconnection", gone.set_result)
    assert await asyncio.wait_for(gone, 2.0) == REFUSE_REASON
    assert peripheral.refused_connections == 1
    await _still_usable(ras, link)


async def test_idle_central_is_disconnected(air: Air) -> None:
    peripheral, _ = await air.add_lock(LUMEN, idle_disconnect_s=60.0)
    link = await air.connect(peripheral)
    air.clock.advance(61)
    peripheral.poke()
    assert await link.wait_disconnected(2.0) == IDLE_REASON
    with pytest.raises(LinkLost):
        await link.request(b"\x00" * 20)


async def test_a_vanished_lock_fails_pending_work_at_once(air: Air) -> None:
    peripheral, ras, link = await _bound(air)
    air.vlink.remove_device(peripheral.device)  # the radio dies: no goodbye from the lock
    await link.wait_disconnected(2.0)
    with pytest.raises(LinkLost):
        await link.request(ras.bolt(OperationOp.UNLOCK))
    await peripheral.stop(graceful=False)  # nothing to say goodbye to
    air.peripherals.remove(peripheral)
